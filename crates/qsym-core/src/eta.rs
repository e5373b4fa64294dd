//! Eta quotients `prod_m (q^m;q^m)_inf^(e_m)` (the `q^(m e_m / 24)` prefactor
//! of Dedekind's eta is left out) and the Jacobi theta series they give.

use crate::series::Series;
use rug::Integer;

/// One factor `(q^m;q^m)_inf^e` of an eta quotient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtaFactor {
    pub m: usize,
    pub e: i64,
}

/// `prod (q^m;q^m)_inf^e` over `factors`, modulo `q^order`.
///
/// Each factor is applied as `|e|` multiplications or divisions by the
/// binomials `1 - q^(m j)`, so the work is exact and needs no inversion.
pub fn eta_quotient(factors: &[EtaFactor], order: usize) -> Series {
    let mut s = Series::one(order);
    let minus_one = Integer::from(-1);
    for f in factors {
        assert!(f.m >= 1, "eta factor needs m >= 1");
        for _ in 0..f.e.unsigned_abs() {
            let mut k = f.m;
            while k < order {
                if f.e > 0 {
                    s.mul_binomial(&minus_one, k);
                } else {
                    s.div_binomial(&minus_one, k);
                }
                k += f.m;
            }
        }
    }
    s
}

/// Jacobi's theta_3(q) = sum_{n in Z} q^(n^2)
/// = (q^2;q^2)^5 / ((q;q)^2 (q^4;q^4)^2).
pub fn theta3(order: usize) -> Series {
    eta_quotient(
        &[
            EtaFactor { m: 2, e: 5 },
            EtaFactor { m: 1, e: -2 },
            EtaFactor { m: 4, e: -2 },
        ],
        order,
    )
}

/// Jacobi's theta_4(q) = sum_{n in Z} (-1)^n q^(n^2) = (q;q)^2 / (q^2;q^2).
pub fn theta4(order: usize) -> Series {
    eta_quotient(
        &[EtaFactor { m: 1, e: 2 }, EtaFactor { m: 2, e: -1 }],
        order,
    )
}

/// theta_2(q) / q^(1/4) = 2 sum_{n>=0} q^(n(n+1)) = 2 (q^4;q^4)^2 / (q^2;q^2).
pub fn theta2_shifted(order: usize) -> Series {
    let s = eta_quotient(
        &[EtaFactor { m: 4, e: 2 }, EtaFactor { m: 2, e: -1 }],
        order,
    );
    Series::from_coeffs(s.into_coeffs().into_iter().map(|c| c * 2).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_quotient_is_one() {
        assert_eq!(eta_quotient(&[], 4), Series::one(4));
    }

    #[test]
    fn factor_and_its_inverse_cancel() {
        let s = eta_quotient(&[EtaFactor { m: 3, e: 4 }, EtaFactor { m: 3, e: -4 }], 30);
        assert_eq!(s, Series::one(30));
    }
}
