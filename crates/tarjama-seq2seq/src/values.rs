//! Reading a tensor's values without a copy where it allows, for the search and the
//! quantized projections.

use candle_core::Tensor;

/// Calls `f` on the values of a contiguous f32 tensor: in place for one on the CPU,
/// otherwise on a copy.
pub(crate) fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&cpu.as_slice::<f32>()?[start..end]));
        }
    }
    Ok(f(&t.flatten_all()?.to_vec1::<f32>()?))
}
