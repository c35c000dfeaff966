//! Must not compile: the input array has 7 elements, the model takes 8 (`f32[2,4]`).
fn main() {
    let x = [0.5f32; 7];
    let mut y = [0.0f32; tiny_mlp::Y_LEN];
    let mut model = tiny_mlp::Model::new();
    let _ = model.run(&tiny_mlp::Inputs { x: &x }, &mut tiny_mlp::Outputs { y: &mut y });
}
