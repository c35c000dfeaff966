//! Compiles: inputs and outputs of exactly the model's sizes.
fn main() {
    let x = [0.5f32; tiny_mlp::X_LEN];
    let mut y = [0.0f32; tiny_mlp::Y_LEN];
    let mut model = tiny_mlp::Model::new();
    model.run(&tiny_mlp::Inputs { x: &x }, &mut tiny_mlp::Outputs { y: &mut y }).unwrap();
    let sum: f32 = y.iter().sum();
    assert!((sum - 2.0).abs() < 1e-5, "two softmax rows sum to 2, got {sum}");
}
