//! Times the matrix products tarjama runs outside candle's own kernels against the candle
//! paths they replace, on the shapes that matter. Threads follow `RAYON_NUM_THREADS` /
//! `CANDLE_NUM_THREADS`; each line is the median of 9 timed calls after a warm-up.
//!
//! ```text
//! cargo run --release -p tarjama-gguf --example kernel_bench
//! cargo run --release -p tarjama-gguf --example kernel_bench -- --gguf MODEL.gguf output.weight
//! cargo run --release -p tarjama-gguf --example kernel_bench -- --gguf MODEL.gguf --rows 8 \
//!     'blk.*.ffn_gate.weight'
//! ```
//!
//! Without arguments: a beam-search step of an opus-mt-ar-en-shaped encoder-decoder (128
//! rows = batch 32 x beam 4, d_model 512, ffn 2048, vocabulary 62k) through f32 with the
//! weight as a transposed view (candle's `Linear`) and stored transposed (`seq2seq::quant`),
//! candle's `Q8_0`, and `seq2seq::int8`. With `--gguf`: products of one input row (or
//! `--rows M`, as M sequences decoding together) by the named tensors through candle's
//! `QMatMul` and ours (`gguf::q4k`, `gguf::q6k`, `gguf::block32` for Q8_0 and Q5_0, else
//! `gguf::model::matvec`); a `*` in a name times all matching tensors in one pass.

use std::time::Instant;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use tarjama_gguf::block32::{Block32Matrix, Kind};
use tarjama_gguf::model::matvec;
use tarjama_gguf::panel::PanelMatrix;
use tarjama_gguf::q4k::Q4kMatrix;
use tarjama_gguf::q6k::Q6kMatrix;
use tarjama_seq2seq::int8::Int8Matrix;

/// Median milliseconds of 9 calls after one warm-up.
fn median_ms(mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    let mut ms = Vec::with_capacity(9);
    for _ in 0..9 {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[4])
}

fn seq2seq_shapes() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let rows = 128;
    println!("| in -> out (x {rows} rows) | f32 view ms | f32 transposed ms | candle Q8_0 ms | int8 ms |");
    println!("|---|---|---|---|---|");
    for (inp, out) in [
        (512, 512),
        (512, 1536),
        (512, 2048),
        (2048, 512),
        (512, 62000),
    ] {
        let w = Tensor::randn(0f32, 0.05, (out, inp), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (rows, inp), &dev)?;
        let view = median_ms(|| x.matmul(&w.t()?).map(drop))?;
        let wt = w.t()?.contiguous()?;
        let transposed = median_ms(|| x.matmul(&wt).map(drop))?;
        let q8 = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?)?;
        let q8_ms = median_ms(|| q8.forward(&x).map(drop))?;
        // Every tier runs it (`TARJAMA_KERNELS` picks one), the fastest or not.
        let int8_ms = {
            let m = Int8Matrix::new(&w.flatten_all()?.to_vec1::<f32>()?, out, inp);
            let xs = x.flatten_all()?.to_vec1::<f32>()?;
            format!(
                "{:.3}",
                median_ms(|| {
                    std::hint::black_box(m.matmul(&xs, rows, None));
                    Ok(())
                })?
            )
        };
        println!("| {inp} -> {out} | {view:.3} | {transposed:.3} | {q8_ms:.3} | {int8_ms} |");
    }
    Ok(())
}

/// Every tensor of `ws` in one of our kernels' layouts, through `from_blocks`.
fn panels<M>(
    ws: &[QTensor],
    from_blocks: impl Fn(&[u8], usize, usize) -> Option<M>,
) -> candle_core::Result<Vec<M>> {
    ws.iter()
        .map(|w| {
            let (n, k) = w.shape().dims2()?;
            from_blocks(&w.data()?, n, k)
                .ok_or_else(|| candle_core::Error::Msg("sizes do not fit the kernel".into()))
        })
        .collect()
}

/// Median milliseconds of one product of `xs` (`xs.len() / cols` rows) through each of
/// `mats`.
fn rows_ms<M: PanelMatrix>(mats: &[M], xs: &[f32], rows: usize) -> candle_core::Result<f64> {
    median_ms(|| {
        for m in mats {
            std::hint::black_box(m.matmul(xs, rows));
        }
        Ok(())
    })
}

fn gguf_tensors(
    path: &str,
    rows: usize,
    names: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut file = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut file)?;
    println!("| tensor | type | MB | candle QMatMul ms | ours ms | ours GB/s |");
    println!("|---|---|---|---|---|---|");
    for pattern in names {
        // `blk.*.ffn_up.weight`: every layer's tensor, timed as one pass over all of
        // them, so the weights stream from memory as in a decoding step rather than
        // from a cache that holds one small matrix.
        let (prefix, suffix) = pattern.split_once('*').unwrap_or((pattern, ""));
        let mut matched: Vec<&String> = content
            .tensor_infos
            .keys()
            .filter(|n| {
                if pattern.contains('*') {
                    n.starts_with(prefix) && n.ends_with(suffix)
                } else {
                    *n == pattern
                }
            })
            .collect();
        matched.sort();
        if matched.is_empty() {
            return Err(format!("no tensor `{pattern}` in {path}").into());
        }
        let mut ws = Vec::new();
        for name in matched {
            ws.push(content.tensor(&mut file, name, &Device::Cpu)?);
        }
        let (_, k) = ws[0].shape().dims2()?;
        let dtype = ws[0].dtype();
        if ws.iter().any(|w| w.dtype() != dtype) {
            return Err(format!("`{pattern}` matches tensors of several types").into());
        }
        let bytes: usize = ws.iter().map(|w| w.storage_size_in_bytes()).sum();
        let xs: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let x = Tensor::from_vec(xs.clone(), (rows, k), &Device::Cpu)?;
        // Over the file's blocks with candle's vec_dot (Q6_K, Q8_0 where our kernels do
        // not run).
        let matvec_ms = || {
            median_ms(|| {
                for w in &ws {
                    matvec(w, &x).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                }
                Ok(())
            })
        };
        let ours = match dtype {
            GgmlDType::Q4K => Some(rows_ms(&panels(&ws, Q4kMatrix::from_blocks)?, &xs, rows)?),
            GgmlDType::Q6K => {
                if rows == 1 {
                    let gemv = matvec_ms()?;
                    println!(
                        "({pattern}: candle's vec_dot over the file's blocks, `matvec`: {gemv:.3} ms)"
                    );
                }
                Some(rows_ms(&panels(&ws, Q6kMatrix::from_blocks)?, &xs, rows)?)
            }
            GgmlDType::Q8_0 | GgmlDType::Q5_0 => {
                let kind = if dtype == GgmlDType::Q8_0 {
                    Kind::Q8_0
                } else {
                    Kind::Q5_0
                };
                let mats = panels(&ws, |d, n, k| Block32Matrix::from_blocks(kind, d, n, k))?;
                Some(rows_ms(&mats, &xs, rows)?)
            }
            _ => None,
        };
        let ours = match ours {
            None if matvec(&ws[0], &x)?.is_some() => Some(matvec_ms()?),
            ours => ours,
        };
        let mms: Vec<QMatMul> = ws
            .into_iter()
            .map(QMatMul::from_qtensor)
            .collect::<candle_core::Result<_>>()?;
        let candle = median_ms(|| {
            for mm in &mms {
                mm.forward(&x)?;
            }
            Ok(())
        })?;
        let (ours, rate) = match ours {
            Some(ms) => (
                format!("{ms:.3}"),
                format!("{:.1}", bytes as f64 / ms / 1e6),
            ),
            None => ("not taken".into(), "".into()),
        };
        let mb = bytes as f64 / 1e6;
        println!("| {pattern} | {dtype:?} | {mb:.0} | {candle:.3} | {ours} | {rate} |");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tarjama_kernels::runtime::tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => Ok(seq2seq_shapes()?),
        Some("--gguf") if args.len() >= 3 => match (args[2].as_str(), args.get(3)) {
            ("--rows", Some(n)) if args.len() >= 5 => {
                let rows = n.parse().map_err(|_| format!("--rows {n}: not a count"))?;
                gguf_tensors(&args[1], rows, &args[4..])
            }
            _ => gguf_tensors(&args[1], 1, &args[2..]),
        },
        _ => Err("usage: kernel_bench [--gguf MODEL.gguf [--rows M] TENSOR...]".into()),
    }
}
