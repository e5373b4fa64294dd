//! Truncated power series with GMP integer coefficients.

use rug::Integer;
use std::fmt;

/// Errors from series arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesError {
    /// The series cannot be inverted over the integers: its constant term is
    /// not +1 or -1.
    NotInvertible(String),
    /// Two series of different truncation orders were combined.
    OrderMismatch(usize, usize),
}

impl fmt::Display for SeriesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeriesError::NotInvertible(c) => write!(
                f,
                "series with constant term {c} has no inverse with integer coefficients"
            ),
            SeriesError::OrderMismatch(a, b) => {
                write!(f, "cannot combine series truncated at orders {a} and {b}")
            }
        }
    }
}

impl std::error::Error for SeriesError {}

/// A power series `sum c_i q^i` known modulo `q^order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    coeffs: Vec<Integer>,
}

impl Series {
    /// The zero series modulo `q^order`.
    pub fn zero(order: usize) -> Self {
        Series {
            coeffs: vec![Integer::new(); order],
        }
    }

    /// The series `1` modulo `q^order`.
    pub fn one(order: usize) -> Self {
        let mut s = Self::zero(order);
        if order > 0 {
            s.coeffs[0] = Integer::from(1);
        }
        s
    }

    /// Builds a series from coefficients; `order` is their count.
    pub fn from_coeffs(coeffs: Vec<Integer>) -> Self {
        Series { coeffs }
    }

    /// Builds a series from machine integers (for tests and small inputs).
    pub fn from_i64s(values: &[i64]) -> Self {
        Series {
            coeffs: values.iter().map(|&v| Integer::from(v)).collect(),
        }
    }

    /// The truncation order: coefficients of `q^0 .. q^(order-1)` are known.
    pub fn order(&self) -> usize {
        self.coeffs.len()
    }

    /// The coefficient of `q^i` (zero past the truncation order).
    pub fn coeff(&self, i: usize) -> Integer {
        self.coeffs.get(i).cloned().unwrap_or_default()
    }

    /// All known coefficients.
    pub fn coeffs(&self) -> &[Integer] {
        &self.coeffs
    }

    /// Consumes the series, returning its coefficients.
    pub fn into_coeffs(self) -> Vec<Integer> {
        self.coeffs
    }

    /// Multiplies in place by the binomial `1 + c q^k` (k >= 0), exactly.
    pub fn mul_binomial(&mut self, c: &Integer, k: usize) {
        if k == 0 {
            let factor = Integer::from(1) + c;
            for x in &mut self.coeffs {
                *x *= &factor;
            }
            return;
        }
        let n = self.coeffs.len();
        // Walk downwards so each coefficient reads the not-yet-updated lower one.
        for i in (k..n).rev() {
            let add = Integer::from(&self.coeffs[i - k] * c);
            self.coeffs[i] += add;
        }
    }

    /// Divides in place by `1 + c q^k` with `k >= 1` (always exact for k >= 1).
    pub fn div_binomial(&mut self, c: &Integer, k: usize) {
        assert!(k >= 1, "div_binomial needs k >= 1");
        let n = self.coeffs.len();
        for i in k..n {
            let sub = Integer::from(&self.coeffs[i - k] * c);
            self.coeffs[i] -= sub;
        }
    }

    /// The product of two series of the same order.
    pub fn mul(&self, other: &Series) -> Result<Series, SeriesError> {
        let n = self.order();
        if other.order() != n {
            return Err(SeriesError::OrderMismatch(n, other.order()));
        }
        let mut out = Series::zero(n);
        for (i, a) in self.coeffs.iter().enumerate() {
            if *a == 0 {
                continue;
            }
            for (j, b) in other.coeffs[..n - i].iter().enumerate() {
                if *b != 0 {
                    out.coeffs[i + j] += Integer::from(a * b);
                }
            }
        }
        Ok(out)
    }

    /// The multiplicative inverse; the constant term must be +1 or -1.
    pub fn inverse(&self) -> Result<Series, SeriesError> {
        let n = self.order();
        if n == 0 {
            return Ok(Series::zero(0));
        }
        let c0 = &self.coeffs[0];
        if *c0 != 1 && *c0 != -1 {
            return Err(SeriesError::NotInvertible(c0.to_string()));
        }
        let sign = c0.clone();
        let mut inv = Series::zero(n);
        inv.coeffs[0] = sign.clone();
        for i in 1..n {
            let mut acc = Integer::new();
            for j in 1..=i {
                if self.coeffs[j] != 0 {
                    acc += Integer::from(&self.coeffs[j] * &inv.coeffs[i - j]);
                }
            }
            // inv_i = -c0^{-1} * sum_{j>=1} c_j inv_{i-j}, and c0^{-1} = c0.
            inv.coeffs[i] = -(acc * &sign);
        }
        Ok(inv)
    }

    /// Raises the series to an integer power (negative powers need an
    /// invertible series).
    pub fn pow(&self, e: i64) -> Result<Series, SeriesError> {
        let base = if e < 0 { self.inverse()? } else { self.clone() };
        let mut k = e.unsigned_abs();
        let mut result = Series::one(self.order());
        let mut square = base;
        while k > 0 {
            if k & 1 == 1 {
                result = result.mul(&square)?;
            }
            k >>= 1;
            if k > 0 {
                square = square.mul(&square)?;
            }
        }
        Ok(result)
    }

    /// Substitutes `q -> q^m` (m >= 1), keeping the truncation order.
    pub fn dilate(&self, m: usize) -> Series {
        assert!(m >= 1, "dilate needs m >= 1");
        let n = self.order();
        let mut out = Series::zero(n);
        for (i, c) in self.coeffs.iter().enumerate() {
            if i * m >= n {
                break;
            }
            out.coeffs[i * m] = c.clone();
        }
        out
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (i, c) in self.coeffs.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            if !first {
                write!(f, " + ")?;
            }
            first = false;
            match i {
                0 => write!(f, "{c}")?,
                1 => write!(f, "{c}*q")?,
                _ => write!(f, "{c}*q^{i}")?,
            }
        }
        if first {
            write!(f, "0")?;
        }
        write!(f, " + O(q^{})", self.order())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_one_minus_q_is_geometric() {
        let s = Series::from_i64s(&[1, -1, 0, 0, 0]);
        assert_eq!(s.inverse().unwrap(), Series::from_i64s(&[1, 1, 1, 1, 1]));
    }

    #[test]
    fn inverse_needs_unit_constant() {
        let s = Series::from_i64s(&[2, 1]);
        assert!(matches!(s.inverse(), Err(SeriesError::NotInvertible(_))));
    }

    #[test]
    fn mul_rejects_mixed_orders() {
        let a = Series::one(3);
        let b = Series::one(4);
        assert_eq!(a.mul(&b), Err(SeriesError::OrderMismatch(3, 4)));
    }

    #[test]
    fn binomial_mul_then_div_roundtrips() {
        let mut s = Series::from_i64s(&[3, -1, 4, 1, -5, 9]);
        let orig = s.clone();
        let c = Integer::from(-7);
        s.mul_binomial(&c, 2);
        s.div_binomial(&c, 2);
        assert_eq!(s, orig);
    }

    #[test]
    fn pow_negative_matches_inverse() {
        let s = Series::from_i64s(&[1, -1, -1, 0, 0, 1, 0, 1]);
        assert_eq!(s.pow(-2).unwrap(), s.inverse().unwrap().pow(2).unwrap());
        assert_eq!(s.pow(0).unwrap(), Series::one(8));
    }

    #[test]
    fn display_is_readable() {
        let s = Series::from_i64s(&[1, 0, -2]);
        assert_eq!(s.to_string(), "1 + -2*q^2 + O(q^3)");
        assert_eq!(Series::zero(2).to_string(), "0 + O(q^2)");
    }
}
