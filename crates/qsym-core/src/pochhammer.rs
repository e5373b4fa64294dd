//! q-Pochhammer products `(a;q)_n = prod_{j=0}^{n-1} (1 - a q^j)` with
//! `a = c q^k` a monomial, as truncated power series.

use crate::series::Series;
use rug::Integer;

/// The monomial `coeff * q^power`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monomial {
    pub coeff: Integer,
    pub power: usize,
}

impl Monomial {
    pub fn new(coeff: impl Into<Integer>, power: usize) -> Self {
        Monomial {
            coeff: coeff.into(),
            power,
        }
    }

    /// The monomial `q` itself.
    pub fn q() -> Self {
        Monomial::new(1, 1)
    }
}

/// Multiplies `s` by `(a;q)_n`, skipping factors that are 1 modulo `q^order`.
fn mul_pochhammer(s: &mut Series, a: &Monomial, n: usize) {
    let minus_c = Integer::from(-&a.coeff);
    for j in 0..n {
        let k = a.power + j;
        if k >= s.order() {
            break;
        }
        s.mul_binomial(&minus_c, k);
    }
}

/// `(a;q)_n` modulo `q^order`.
pub fn qpochhammer(a: &Monomial, n: usize, order: usize) -> Series {
    let mut s = Series::one(order);
    mul_pochhammer(&mut s, a, n);
    s
}

/// `(a;q)_inf` modulo `q^order`; needs `a.power >= 1` for convergence.
pub fn qpochhammer_inf(a: &Monomial, order: usize) -> Series {
    assert!(
        a.power >= 1,
        "(a;q)_inf converges only for a = c*q^k with k >= 1"
    );
    qpochhammer(a, order, order)
}

/// `(a;q)_n / (q;q)_inf` modulo `q^order`; `n = None` means `(a;q)_inf`
/// (then `a.power >= 1`).
pub fn qpochhammer_ratio(a: &Monomial, n: Option<usize>, order: usize) -> Series {
    let mut s = match n {
        Some(n) => qpochhammer(a, n, order),
        None => qpochhammer_inf(a, order),
    };
    let minus_one = Integer::from(-1);
    for m in 1..order {
        s.div_binomial(&minus_one, m);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_product_by_hand() {
        // (q;q)_2 = (1-q)(1-q^2) = 1 - q - q^2 + q^3
        let s = qpochhammer(&Monomial::q(), 2, 6);
        assert_eq!(s, Series::from_i64s(&[1, -1, -1, 1, 0, 0]));
    }

    #[test]
    fn zero_power_factor_is_constant() {
        // (2;q)_1 = 1 - 2
        let s = qpochhammer(&Monomial::new(2, 0), 1, 3);
        assert_eq!(s, Series::from_i64s(&[-1, 0, 0]));
    }

    #[test]
    #[should_panic(expected = "converges only")]
    fn infinite_product_needs_positive_power() {
        qpochhammer_inf(&Monomial::new(1, 0), 5);
    }
}
