//! Exact q-series arithmetic on GMP big integers.
//!
//! Every object here is a formal power series in `q` with integer
//! coefficients, truncated at a fixed order: [`Series`] stores the
//! coefficients of `q^0 .. q^(order-1)`, and every operation is exact.
//!
//! * [`partitions`]: the partition function p(n) (OEIS A000041) by Euler's
//!   pentagonal-number recurrence.
//! * [`pochhammer`]: finite and infinite q-Pochhammer products
//!   `(a;q)_n` with `a = c*q^k`, and quotients such as `(a;q)_n / (q;q)_inf`.
//! * [`eta`]: eta quotients `prod (q^m;q^m)_inf^e` and the Jacobi theta
//!   series built from them.

pub mod eta;
pub mod partitions;
pub mod pochhammer;
pub mod series;

pub use eta::{eta_quotient, theta2_shifted, theta3, theta4, EtaFactor};
pub use partitions::{partition_count, partition_counts};
pub use pochhammer::{qpochhammer, qpochhammer_inf, qpochhammer_ratio, Monomial};
pub use series::{Series, SeriesError};

/// The version of the GMP library linked at run time (e.g. "6.2.1").
pub fn gmp_version() -> String {
    // SAFETY: `gmp_version` is a NUL-terminated string constant exported by GMP.
    let v = unsafe { std::ffi::CStr::from_ptr(gmp_mpfr_sys::gmp::version) };
    v.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn gmp_version_is_six_point_something() {
        assert!(
            super::gmp_version().starts_with("6."),
            "{}",
            super::gmp_version()
        );
    }
}
