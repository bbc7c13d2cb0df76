//! Running independent requests at once: the chat translator's requests and the
//! summaries' parts go to an engine that works on several together, and their results
//! come back in order whatever order they finish in.

/// `f(0..n)`, up to `parallel` calls at once on scoped threads (inline when 1); results
/// in index order.
pub fn run_concurrently<T: Send>(
    n: usize,
    parallel: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = parallel.min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<T>>> = (0..n).map(|_| Default::default()).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let value = f(i);
                *slots[i].lock().expect("no panic while holding") = Some(value);
            });
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .expect("no panic while holding")
                .expect("every index ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_index_order() {
        for parallel in [0, 1, 3, 16] {
            let out = run_concurrently(10, parallel, |i| {
                // Later indices finish first.
                std::thread::sleep(std::time::Duration::from_millis((10 - i as u64) * 2));
                i * i
            });
            assert_eq!(
                out,
                (0..10).map(|i| i * i).collect::<Vec<_>>(),
                "{parallel}"
            );
        }
        assert!(run_concurrently(0, 4, |i| i).is_empty());
    }

    #[test]
    fn no_more_than_parallel_calls_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        run_concurrently(12, 3, |_| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            now.fetch_sub(1, Ordering::SeqCst);
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
    }
}
