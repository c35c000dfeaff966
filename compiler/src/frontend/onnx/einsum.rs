//! ONNX `Einsum`: the equation parsed (explicit or implicit output, `...` broadcasting,
//! repeated labels as diagonals) into the IR's numbered labels.
#![deny(clippy::indexing_slicing)]
use super::node::NodeCtx;
use crate::error::OpError;
use crate::invalid;
use crate::ir::ValueId;
use crate::ops::Op;
use crate::ops::einsum::Einsum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    /// The k-th axis covered by `...`, counted in the widest ellipsis.
    Ellipsis(usize),
    Letter(char),
}

/// A term's labels, with its ellipsis expanded to `ellipsis_rank` axes.
fn term_labels(term: &str, ellipsis_rank: usize, widest: usize) -> Result<Vec<Label>, OpError> {
    let mut out = Vec::new();
    let mut rest = term;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("...") {
            out.extend((widest - ellipsis_rank..widest).map(Label::Ellipsis));
            rest = r;
            continue;
        }
        let mut chars = rest.chars();
        match chars.next() {
            Some(ch) if ch.is_ascii_alphabetic() => out.push(Label::Letter(ch)),
            Some(ch) => return invalid!("bad character `{ch}` in einsum term `{term}`"),
            None => {}
        }
        rest = chars.as_str();
    }
    Ok(out)
}

fn letters(term: &str) -> usize {
    term.chars().filter(char::is_ascii_alphabetic).count()
}

pub fn einsum(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let equation: String = c
        .attr_string("equation", "")?
        .chars()
        .filter(|ch| !ch.is_whitespace())
        .collect();
    let (lhs, rhs) = match equation.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (equation.as_str(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    let inputs = c.all_inputs();
    if terms.len() != inputs.len() {
        return invalid!(
            "equation `{equation}` has {} operands, the node {}",
            terms.len(),
            inputs.len()
        );
    }
    let mut ellipsis_ranks = Vec::new();
    for (term, &x) in terms.iter().zip(&inputs) {
        let rank = c.ty(x).rank();
        let explicit = letters(term);
        let e = if term.contains("...") {
            rank.checked_sub(explicit).ok_or_else(|| {
                OpError::Invalid(format!("term `{term}` has more labels than rank {rank}"))
            })?
        } else if explicit != rank {
            return invalid!("term `{term}` does not fit an operand of rank {rank}");
        } else {
            0
        };
        ellipsis_ranks.push(e);
    }
    let widest = ellipsis_ranks.iter().copied().max().unwrap_or(0);
    let mut operand_labels = Vec::new();
    for (term, &e) in terms.iter().zip(&ellipsis_ranks) {
        operand_labels.push(term_labels(term, e, widest)?);
    }
    let output: Vec<Label> = match rhs {
        Some(r) => term_labels(r, widest, widest)?,
        None => {
            let mut out: Vec<Label> = (0..widest).map(Label::Ellipsis).collect();
            let mut once: Vec<Label> = Vec::new();
            let all: Vec<Label> = operand_labels.iter().flatten().copied().collect();
            for &l in &all {
                if matches!(l, Label::Letter(_)) && all.iter().filter(|&&m| m == l).count() == 1 {
                    once.push(l);
                }
            }
            once.sort();
            out.extend(once);
            out
        }
    };
    let mut order: Vec<Label> = Vec::new();
    for &l in &output {
        if order.contains(&l) {
            return invalid!("output label {l:?} repeats in `{equation}`");
        }
        order.push(l);
    }
    for &l in operand_labels.iter().flatten() {
        if !order.contains(&l) {
            order.push(l);
        }
    }
    let mut sizes = vec![1usize; order.len()];
    let id = |l: Label| order.iter().position(|&m| m == l).unwrap_or(0);
    for (labels, &x) in operand_labels.iter().zip(&inputs) {
        for (&l, &d) in labels.iter().zip(&c.ty(x).shape) {
            let Some(s) = sizes.get_mut(id(l)) else {
                continue;
            };
            if d != 1 {
                if *s != 1 && *s != d {
                    return invalid!("label {l:?} has sizes {} and {d}", *s);
                }
                *s = d;
            }
        }
    }
    if output
        .iter()
        .any(|l| !operand_labels.iter().flatten().any(|m| m == l))
    {
        return invalid!("an output label of `{equation}` appears in no operand");
    }
    let operands = operand_labels
        .iter()
        .map(|labels| labels.iter().map(|&l| id(l)).collect())
        .collect();
    let op = Einsum {
        operands,
        output_rank: output.len(),
        sizes,
    };
    Ok(vec![c.add1(Op::Einsum(op), &inputs)?])
}
