//! `q_kangaroo._core`: PyO3 bindings for qsym-core.
//!
//! Big integers cross the boundary as Python `int`s through their decimal
//! string, which is exact for any size and needs nothing outside the limited
//! API (the module is abi3).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use qsym_core::{EtaFactor, Monomial, Series};
use rug::Integer;

fn int_to_py<'py>(py: Python<'py>, value: &Integer) -> PyResult<Bound<'py, PyAny>> {
    let builtins = py.import("builtins")?;
    builtins.getattr("int")?.call1((value.to_string(),))
}

fn int_from_py(value: &Bound<'_, PyAny>) -> PyResult<Integer> {
    let text: String = value.str()?.extract()?;
    text.parse::<Integer>()
        .map_err(|e| PyValueError::new_err(format!("not an integer: {text}: {e}")))
}

fn series_to_py<'py>(py: Python<'py>, series: &Series) -> PyResult<Bound<'py, PyList>> {
    let items: PyResult<Vec<_>> = series.coeffs().iter().map(|c| int_to_py(py, c)).collect();
    PyList::new(py, items?)
}

fn check_order(order: usize) -> PyResult<()> {
    if order > 1_000_000 {
        return Err(PyValueError::new_err("order must be at most 1000000"));
    }
    Ok(())
}

/// The number of partitions of n, exactly.
#[pyfunction]
fn partition_count<'py>(py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyAny>> {
    check_order(n)?;
    let p = py.detach(|| qsym_core::partition_count(n));
    int_to_py(py, &p)
}

/// The list [p(0), p(1), ..., p(n)].
#[pyfunction]
fn partition_counts<'py>(py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
    check_order(n)?;
    let values = py.detach(|| qsym_core::partition_counts(n));
    let items: PyResult<Vec<_>> = values.iter().map(|c| int_to_py(py, c)).collect();
    PyList::new(py, items?)
}

/// Coefficients of (a;q)_n / (q;q)_inf up to q^(order-1), with a = coeff*q^power.
/// n=None means the infinite product (a;q)_inf (then power >= 1).
#[pyfunction]
#[pyo3(signature = (coeff, power, n, order))]
fn qpochhammer_ratio<'py>(
    py: Python<'py>,
    coeff: &Bound<'py, PyAny>,
    power: usize,
    n: Option<usize>,
    order: usize,
) -> PyResult<Bound<'py, PyList>> {
    check_order(order)?;
    if n.is_none() && power == 0 {
        return Err(PyValueError::new_err(
            "(a;q)_inf converges only for a = c*q^k with k >= 1",
        ));
    }
    let a = Monomial::new(int_from_py(coeff)?, power);
    let s = py.detach(|| qsym_core::qpochhammer_ratio(&a, n, order));
    series_to_py(py, &s)
}

/// Coefficients of (a;q)_n up to q^(order-1), with a = coeff*q^power.
#[pyfunction]
fn qpochhammer<'py>(
    py: Python<'py>,
    coeff: &Bound<'py, PyAny>,
    power: usize,
    n: usize,
    order: usize,
) -> PyResult<Bound<'py, PyList>> {
    check_order(order)?;
    let a = Monomial::new(int_from_py(coeff)?, power);
    let s = py.detach(|| qsym_core::qpochhammer(&a, n, order));
    series_to_py(py, &s)
}

/// Coefficients of prod (q^m;q^m)_inf^e for (m, e) in factors.
#[pyfunction]
fn eta_quotient<'py>(
    py: Python<'py>,
    factors: Vec<(usize, i64)>,
    order: usize,
) -> PyResult<Bound<'py, PyList>> {
    check_order(order)?;
    let mut fs = Vec::with_capacity(factors.len());
    for (m, e) in factors {
        if m == 0 {
            return Err(PyValueError::new_err("eta factor (m, e) needs m >= 1"));
        }
        fs.push(EtaFactor { m, e });
    }
    let s = py.detach(|| qsym_core::eta_quotient(&fs, order));
    series_to_py(py, &s)
}

/// Coefficients of Jacobi's theta_3(q) = sum q^(n^2).
#[pyfunction]
fn theta3<'py>(py: Python<'py>, order: usize) -> PyResult<Bound<'py, PyList>> {
    check_order(order)?;
    let s = py.detach(|| qsym_core::theta3(order));
    series_to_py(py, &s)
}

/// Coefficients of Jacobi's theta_4(q) = sum (-1)^n q^(n^2).
#[pyfunction]
fn theta4<'py>(py: Python<'py>, order: usize) -> PyResult<Bound<'py, PyList>> {
    check_order(order)?;
    let s = py.detach(|| qsym_core::theta4(order));
    series_to_py(py, &s)
}

/// The GMP version the extension is running against (e.g. "6.3.0").
#[pyfunction]
fn gmp_version() -> String {
    qsym_core::gmp_version()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(partition_count, m)?)?;
    m.add_function(wrap_pyfunction!(partition_counts, m)?)?;
    m.add_function(wrap_pyfunction!(qpochhammer, m)?)?;
    m.add_function(wrap_pyfunction!(qpochhammer_ratio, m)?)?;
    m.add_function(wrap_pyfunction!(eta_quotient, m)?)?;
    m.add_function(wrap_pyfunction!(theta3, m)?)?;
    m.add_function(wrap_pyfunction!(theta4, m)?)?;
    m.add_function(wrap_pyfunction!(gmp_version, m)?)?;
    Ok(())
}
