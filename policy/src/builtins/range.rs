//! usher's bounded `numbers.range` and `numbers.range_step`: a single
//! builtin call cannot be interrupted by the evaluation timer, so their
//! output is capped instead.

use regorus::Value;

/// The most elements `numbers.range` / `numbers.range_step` may produce.
pub const MAX_RANGE_ELEMENTS: u64 = 1_000_000;

/// usher's `numbers.range` / `numbers.range_step`: regorus' semantics, but
/// at most [`MAX_RANGE_ELEMENTS`] elements (an evaluation error beyond).
pub(super) fn bounded_range(args: &[Value], stepped: bool) -> anyhow::Result<Value> {
    let name = if stepped {
        "numbers.range_step"
    } else {
        "numbers.range"
    };
    let int = |i: usize| match args.get(i) {
        Some(Value::Number(n)) if n.is_integer() => n.as_i64(),
        _ => None,
    };
    let (Some(a), Some(b)) = (int(0), int(1)) else {
        // Non-integer operands: undefined, as regorus does when not strict.
        return Ok(Value::Undefined);
    };
    let step = if stepped {
        match int(2) {
            Some(s) if s > 0 => s,
            _ => return Ok(Value::Undefined),
        }
    } else {
        1
    };
    let span = u64::try_from(i128::from(b).abs_diff(i128::from(a))).unwrap_or(u64::MAX);
    let step_u = step.unsigned_abs();
    let count = (span / step_u).saturating_add(1);
    if count > MAX_RANGE_ELEMENTS {
        anyhow::bail!("{name}: {count} elements exceed usher's limit of {MAX_RANGE_ELEMENTS}");
    }
    let dir: i64 = if b >= a { 1 } else { -1 };
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut v = a;
    for _ in 0..count {
        out.push(Value::from(v));
        v = v.saturating_add(dir.saturating_mul(step));
    }
    Ok(Value::from(out))
}
