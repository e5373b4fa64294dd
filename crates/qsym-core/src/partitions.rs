//! The partition function p(n), OEIS A000041.

use rug::Integer;

/// Generalised pentagonal numbers k(3k-1)/2 for k = 1, -1, 2, -2, ... up to
/// `limit`, each with the sign (-1)^(k+1) it carries in Euler's recurrence.
fn pentagonal_terms(limit: usize) -> Vec<(usize, bool)> {
    let mut terms = Vec::new();
    let mut k: usize = 1;
    loop {
        let g1 = k * (3 * k - 1) / 2;
        if g1 > limit {
            break;
        }
        let positive = k % 2 == 1;
        terms.push((g1, positive));
        let g2 = k * (3 * k + 1) / 2;
        if g2 <= limit {
            terms.push((g2, positive));
        }
        k += 1;
    }
    terms
}

/// p(0), p(1), ..., p(n) by Euler's pentagonal-number recurrence
/// `p(n) = sum_{k>=1} (-1)^(k+1) [p(n - k(3k-1)/2) + p(n - k(3k+1)/2)]`.
///
/// ```
/// let p = qsym_core::partitions::partition_counts(7);
/// assert_eq!(p, [1, 1, 2, 3, 5, 7, 11, 15]);
/// ```
pub fn partition_counts(n: usize) -> Vec<Integer> {
    let terms = pentagonal_terms(n);
    let mut p: Vec<Integer> = Vec::with_capacity(n + 1);
    p.push(Integer::from(1));
    for m in 1..=n {
        let mut acc = Integer::new();
        for &(g, positive) in &terms {
            if g > m {
                break;
            }
            if positive {
                acc += &p[m - g];
            } else {
                acc -= &p[m - g];
            }
        }
        p.push(acc);
    }
    p
}

/// The number of partitions of `n`, exactly.
///
/// ```
/// // Far beyond 64 bits: Hardy and Ramanujan's p(200).
/// let p = qsym_core::partitions::partition_count(200);
/// assert_eq!(p.to_string(), "3972999029388");
/// assert_eq!(qsym_core::partitions::partition_count(1000).to_string().len(), 32);
/// ```
pub fn partition_count(n: usize) -> Integer {
    partition_counts(n)
        .pop()
        .expect("partition_counts returns n+1 values")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pentagonal_numbers_in_order() {
        let g: Vec<usize> = pentagonal_terms(40).iter().map(|t| t.0).collect();
        assert_eq!(g, vec![1, 2, 5, 7, 12, 15, 22, 26, 35, 40]);
    }

    #[test]
    fn p_of_zero_is_one() {
        assert_eq!(partition_count(0), 1);
    }
}
