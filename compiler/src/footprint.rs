//! Footprint from a built artefact: section sizes read from an ELF file's section headers
//! (32- or 64-bit, little-endian), summed into flash (what the image stores) and RAM (what
//! runs in memory), as `slm-aot size` prints.
#![deny(clippy::indexing_slicing)]
use crate::error::{Error, Result};
use std::path::Path;

/// One allocated section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    /// `SHF_WRITE`: lives in RAM at run time.
    pub writable: bool,
    /// `SHT_NOBITS` (`.bss`-like): takes no space in the image.
    pub nobits: bool,
}

/// Sizes of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub sections: Vec<Section>,
    /// Bytes stored in the image: code, read-only data, weights, and initial values of data.
    pub flash_bytes: u64,
    /// Bytes of writable memory: data and bss (the arena and model state live here when
    /// they are statics).
    pub ram_bytes: u64,
}

fn bad(path: &Path, why: &str) -> Error {
    Error::Usage(format!(
        "`{}` is not a usable ELF file: {why}",
        path.display()
    ))
}

fn read_uint(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(width)?)?;
    Some(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
}

/// Read the allocated sections of an ELF file.
pub fn read(path: &Path) -> Result<Footprint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).ok_or_else(|| bad(path, "malformed or big-endian header"))
}

fn parse(bytes: &[u8]) -> Option<Footprint> {
    if bytes.get(..4)? != b"\x7fELF" || *bytes.get(5)? != 1 {
        return None;
    }
    let wide = match bytes.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let w = if wide { 8 } else { 4 };
    let (shoff_at, shentsize_at) = if wide { (0x28, 0x3a) } else { (0x20, 0x2e) };
    let shoff = read_uint(bytes, shoff_at, w)? as usize;
    let shentsize = read_uint(bytes, shentsize_at, 2)? as usize;
    let shnum = read_uint(bytes, shentsize_at + 2, 2)? as usize;
    let shstrndx = read_uint(bytes, shentsize_at + 4, 2)? as usize;
    let header = |i: usize| -> Option<(u64, u32, u64, u64, u64, u64)> {
        let base = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = read_uint(bytes, base, 4)?;
        let kind = read_uint(bytes, base + 4, 4)? as u32;
        let flags = read_uint(bytes, base + 8, w)?;
        let addr = read_uint(bytes, base + 8 + w, w)?;
        let offset = read_uint(bytes, base + 8 + 2 * w, w)?;
        let size = read_uint(bytes, base + 8 + 3 * w, w)?;
        Some((name, kind, flags, addr, offset, size))
    };
    let (_, _, _, _, str_off, str_size) = header(shstrndx)?;
    let strtab = bytes.get(str_off as usize..(str_off as usize).checked_add(str_size as usize)?)?;
    let mut sections = Vec::new();
    for i in 0..shnum {
        let (name_at, kind, flags, addr, _, size) = header(i)?;
        const SHF_WRITE: u64 = 1;
        const SHF_ALLOC: u64 = 2;
        const SHT_NOBITS: u32 = 8;
        if flags & SHF_ALLOC == 0 || size == 0 {
            continue;
        }
        let name_bytes = strtab.get(name_at as usize..)?;
        let end = name_bytes.iter().position(|&b| b == 0)?;
        let name = name_bytes.get(..end)?;
        sections.push(Section {
            name: String::from_utf8_lossy(name).into_owned(),
            addr,
            size,
            writable: flags & SHF_WRITE != 0,
            nobits: kind == SHT_NOBITS,
        });
    }
    let flash_bytes = sections.iter().filter(|s| !s.nobits).map(|s| s.size).sum();
    let ram_bytes = sections.iter().filter(|s| s.writable).map(|s| s.size).sum();
    Some(Footprint {
        sections,
        flash_bytes,
        ram_bytes,
    })
}

/// A printable table of a footprint.
pub fn report(f: &Footprint) -> String {
    let mut s = String::from("section                      address        bytes  where\n");
    for sec in &f.sections {
        let place = match (sec.writable, sec.nobits) {
            (true, true) => "RAM (zeroed)",
            (true, false) => "RAM + flash (initial values)",
            _ => "flash",
        };
        s.push_str(&format!(
            "{:<28} 0x{:08x} {:>12}  {place}\n",
            sec.name, sec.addr, sec.size
        ));
    }
    s.push_str(&format!(
        "flash (image): {} bytes\nRAM (data + bss): {} bytes\n",
        f.flash_bytes, f.ram_bytes
    ));
    s
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_test_binary_and_rejects_garbage() {
        let me = std::env::current_exe().unwrap();
        let f = read(&me).unwrap();
        assert!(f.sections.iter().any(|s| s.name == ".text" && s.size > 0));
        assert!(f.flash_bytes > 0);
        assert!(parse(b"\x7fELF\x02\x01garbage").is_none());
        assert!(parse(b"not an elf").is_none());
    }
}
