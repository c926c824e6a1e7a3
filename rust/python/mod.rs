//! The `raftwal._native` extension module.

use pyo3::prelude::*;

/// CRC-32C of `data`, continuing from `crc` (0 starts a new checksum).
#[pyfunction(name = "crc32c")]
#[pyo3(signature = (data, crc = 0))]
fn crc32c_py(py: Python<'_>, data: &[u8], crc: u32) -> u32 {
    if data.len() > 1 << 16 {
        py.detach(|| crate::crc::update(crc, data))
    } else {
        crate::crc::update(crc, data)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crc32c_py, m)?)?;
    Ok(())
}
