//! A weight blob as a static library: an `ar` archive holding one ELF relocatable object
//! whose only section is the blob (64-byte aligned) under one global symbol.
//!
//! A generated crate's `build.rs` streams `weights.bin` through [`BlobArchive`] into
//! `OUT_DIR`, and `lib.rs` declares the symbol with [`weights_in_object!`](crate::weights_in_object),
//! so rustc never holds the blob (`include_bytes!` of an N-byte blob costs rustc ≈ 15·N of
//! RAM); the linker maps it from the archive like any other read-only section.
//!
//! Layout: `!<arch>`, a GNU symbol index naming the symbol, then member `weights.o`:
//! ELF header, padding to byte 64, the blob, `.symtab`, `.strtab`, `.shstrtab`, section
//! headers. [`BlobArchive::head`] is everything before the blob, [`BlobArchive::tail`]
//! everything after, so the blob itself is copied by the caller and never buffered here.

/// The ELF flavour of a target: word size, `e_machine` and `e_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectFormat {
    pub elf64: bool,
    pub machine: u16,
    pub flags: u32,
}

impl ObjectFormat {
    /// The format for a target named by Cargo's `CARGO_CFG_TARGET_*` values, or `None` when
    /// the target does not link ELF objects (Apple, Windows) or is not a little-endian
    /// x86/x86_64/aarch64/arm target.
    pub fn for_target(arch: &str, os: &str, vendor: &str, abi: &str, endian: &str) -> Option<Self> {
        if vendor == "apple" || os == "windows" || os == "uefi" || endian != "little" {
            return None;
        }
        let (elf64, machine, flags) = match arch {
            "x86_64" => (true, 62, 0),
            "aarch64" => (true, 183, 0),
            "x86" => (false, 3, 0),
            // EABI version 5, with the float ABI of the target (hard for `*eabihf`).
            "arm" => (
                false,
                40,
                0x0500_0000 | if abi == "eabihf" { 0x400 } else { 0x200 },
            ),
            _ => return None,
        };
        Some(ObjectFormat {
            elf64,
            machine,
            flags,
        })
    }
}

/// Offset of the blob inside the object (the ELF header, padded to the blob's alignment).
const DATA_OFFSET: u64 = 64;
/// Section headers: null, blob, `.symtab`, `.strtab`, `.shstrtab`, `.note.GNU-stack`.
const SECTIONS: u16 = 6;
const SHSTRTAB_INDEX: u16 = 4;
const ARCHIVE_MAGIC: &[u8] = b"!<arch>\n";
const MEMBER_HEADER: u64 = 60;

/// One blob as an archive: the symbol and section it is placed under, and its length.
#[derive(Debug, Clone, Copy)]
pub struct BlobArchive<'a> {
    pub format: ObjectFormat,
    /// The global (hidden) symbol at the blob's first byte.
    pub symbol: &'a str,
    /// The section holding the blob (e.g. `.rodata.slm_weights`, or a linker script's `.weights`).
    pub section: &'a str,
    pub len: u64,
}

/// Byte offsets inside the object member.
struct Layout {
    symtab: u64,
    strtab: u64,
    shstrtab: u64,
    headers: u64,
    object_len: u64,
}

impl BlobArchive<'_> {
    fn sym_size(&self) -> u64 {
        if self.format.elf64 { 24 } else { 16 }
    }

    fn align(&self) -> u64 {
        if self.format.elf64 { 8 } else { 4 }
    }

    fn strtab_len(&self) -> u64 {
        self.symbol.len() as u64 + 2
    }

    fn shstrtab_len(&self) -> u64 {
        // "\0" section "\0.symtab\0.strtab\0.shstrtab\0.note.GNU-stack\0"
        1 + self.section.len() as u64 + 1 + 8 + 8 + 10 + 16
    }

    fn layout(&self) -> Layout {
        let align = self.align();
        let symtab = (DATA_OFFSET + self.len).next_multiple_of(align);
        let strtab = symtab + 2 * self.sym_size();
        let shstrtab = strtab + self.strtab_len();
        let headers = (shstrtab + self.shstrtab_len()).next_multiple_of(align);
        let shentsize = if self.format.elf64 { 64 } else { 40 };
        Layout {
            symtab,
            strtab,
            shstrtab,
            headers,
            object_len: headers + u64::from(SECTIONS) * shentsize,
        }
    }

    /// Bytes of the symbol index member's data (count, one offset, the name, even padding).
    fn index_len(&self) -> u64 {
        (8 + self.symbol.len() as u64 + 1).next_multiple_of(2)
    }

    /// Whether the blob fits the format (ELF32 offsets are 32-bit) and names are non-empty
    /// and free of NUL bytes.
    pub fn is_valid(&self) -> bool {
        let names_ok = [self.symbol, self.section]
            .iter()
            .all(|s| !s.is_empty() && !s.as_bytes().contains(&0));
        names_ok && (self.format.elf64 || self.layout().object_len <= u64::from(u32::MAX))
    }

    /// Total bytes of the archive.
    pub fn archive_len(&self) -> u64 {
        let object = self.layout().object_len;
        ARCHIVE_MAGIC.len() as u64
            + MEMBER_HEADER
            + self.index_len()
            + MEMBER_HEADER
            + object.next_multiple_of(2)
    }

    /// Everything before the blob: archive magic, symbol index, the object's member header,
    /// ELF header and padding to the blob.
    pub fn head(&self, emit: &mut dyn FnMut(&[u8])) {
        let lay = self.layout();
        emit(ARCHIVE_MAGIC);
        member_header(emit, b"/", self.index_len());
        let object_member = ARCHIVE_MAGIC.len() as u64 + MEMBER_HEADER + self.index_len();
        emit(&1u32.to_be_bytes());
        emit(&(object_member as u32).to_be_bytes());
        emit(self.symbol.as_bytes());
        emit(&[0]);
        if (self.symbol.len() + 1) % 2 == 1 {
            emit(b"\n");
        }
        member_header(emit, b"weights.o/", lay.object_len);
        // ELF header.
        let class = if self.format.elf64 { 2 } else { 1 };
        emit(&[
            0x7f, b'E', b'L', b'F', class, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        emit(&1u16.to_le_bytes()); // ET_REL
        emit(&self.format.machine.to_le_bytes());
        emit(&1u32.to_le_bytes()); // EV_CURRENT
        let ehsize: u16 = if self.format.elf64 {
            self.word(emit, 0); // entry
            self.word(emit, 0); // phoff
            self.word(emit, lay.headers);
            64
        } else {
            self.word(emit, 0);
            self.word(emit, 0);
            self.word(emit, lay.headers);
            52
        };
        emit(&self.format.flags.to_le_bytes());
        emit(&ehsize.to_le_bytes());
        emit(&0u16.to_le_bytes()); // phentsize
        emit(&0u16.to_le_bytes()); // phnum
        let shentsize: u16 = if self.format.elf64 { 64 } else { 40 };
        emit(&shentsize.to_le_bytes());
        emit(&SECTIONS.to_le_bytes());
        emit(&SHSTRTAB_INDEX.to_le_bytes());
        zeros(emit, DATA_OFFSET - u64::from(ehsize));
    }

    /// Everything after the blob: symbol table, string tables, section headers, and the
    /// archive's even padding.
    pub fn tail(&self, emit: &mut dyn FnMut(&[u8])) {
        let lay = self.layout();
        zeros(emit, lay.symtab - (DATA_OFFSET + self.len));
        // Symbols: the null symbol, then the blob (global object, hidden, section 1).
        zeros(emit, self.sym_size());
        let (info, other, shndx) = (0x11u8, 2u8, 1u16);
        emit(&1u32.to_le_bytes()); // name: offset 1 in .strtab
        if self.format.elf64 {
            emit(&[info, other]);
            emit(&shndx.to_le_bytes());
            self.word(emit, 0);
            self.word(emit, self.len);
        } else {
            self.word(emit, 0);
            self.word(emit, self.len);
            emit(&[info, other]);
            emit(&shndx.to_le_bytes());
        }
        emit(&[0]);
        emit(self.symbol.as_bytes());
        emit(&[0]);
        emit(&[0]);
        emit(self.section.as_bytes());
        emit(b"\0.symtab\0.strtab\0.shstrtab\0.note.GNU-stack\0");
        zeros(emit, lay.headers - lay.shstrtab - self.shstrtab_len());
        // Section headers: (name, type, flags, offset, size, link, info, align, entsize).
        let name = |k: u64| 1 + self.section.len() as u64 + 1 + k;
        let a = self.align();
        let headers = [
            (0, 0, 0, 0, 0, 0, 0, 0, 0),
            (1, 1, 2, DATA_OFFSET, self.len, 0, 0, DATA_OFFSET, 0),
            (
                name(0),
                2,
                0,
                lay.symtab,
                2 * self.sym_size(),
                3,
                1,
                a,
                self.sym_size(),
            ),
            (name(8), 3, 0, lay.strtab, self.strtab_len(), 0, 0, 1, 0),
            (
                name(16),
                3,
                0,
                lay.shstrtab,
                self.shstrtab_len(),
                0,
                0,
                1,
                0,
            ),
            (name(26), 1, 0, lay.headers, 0, 0, 0, 1, 0),
        ];
        for (name, kind, flags, offset, size, link, info, align, entsize) in headers {
            emit(&(name as u32).to_le_bytes());
            emit(&(kind as u32).to_le_bytes());
            self.word(emit, flags);
            self.word(emit, 0); // addr
            self.word(emit, offset);
            self.word(emit, size);
            emit(&(link as u32).to_le_bytes());
            emit(&(info as u32).to_le_bytes());
            self.word(emit, align);
            self.word(emit, entsize);
        }
        if lay.object_len % 2 == 1 {
            emit(b"\n");
        }
    }

    /// An ELF address/offset/size word: 8 bytes in ELF64, 4 in ELF32 (callers check
    /// [`is_valid`](Self::is_valid) first).
    fn word(&self, emit: &mut dyn FnMut(&[u8]), v: u64) {
        if self.format.elf64 {
            emit(&v.to_le_bytes());
        } else {
            emit(&(v as u32).to_le_bytes());
        }
    }
}

/// A 60-byte `ar` member header: name, date 0, uid 0, gid 0, mode 644, size, magic.
fn member_header(emit: &mut dyn FnMut(&[u8]), name: &[u8], size: u64) {
    let mut h = [b' '; 60];
    h[..name.len()].copy_from_slice(name);
    h[16] = b'0';
    h[28] = b'0';
    h[34] = b'0';
    h[40..43].copy_from_slice(b"644");
    let mut digits = [0u8; 20];
    let mut n = size;
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    h[48..48 + digits.len() - k].copy_from_slice(&digits[k..]);
    h[58..60].copy_from_slice(b"`\n");
    emit(&h);
}

fn zeros(emit: &mut dyn FnMut(&[u8]), n: u64) {
    const Z: [u8; 64] = [0; 64];
    let mut left = n;
    while left > 0 {
        let k = left.min(64);
        emit(&Z[..k as usize]);
        left -= k;
    }
}

/// Declare a model's weight blob as an external symbol (the archive `build.rs` writes with
/// [`BlobArchive`]): `weights_in_object!("slm_weights_x", WEIGHTS, LEN)` declares
/// `static WEIGHTS: &Aligned64<[u8; LEN]>`, read in place where the linker put the section.
/// Generated crates are `#![forbid(unsafe_code)]`; the `unsafe extern` block is written here.
#[macro_export]
macro_rules! weights_in_object {
    ($symbol:literal, $name:ident, $len:expr) => {
        // The symbol is defined once, by the archive the crate's build script writes from
        // `weights.bin` (checked against the crate's SHA-256).
        // SAFETY: it is an immutable blob of exactly `$len` bytes at the start of a section
        // aligned to 64 bytes: a valid `Aligned64<[u8; $len]>` for the whole program.
        unsafe extern "C" {
            #[link_name = $symbol]
            safe static __SLM_AOT_WEIGHT_BLOB: $crate::Aligned64<[u8; $len]>;
        }
        static $name: &$crate::Aligned64<[u8; $len]> = &__SLM_AOT_WEIGHT_BLOB;
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn archive(format: ObjectFormat, symbol: &str, blob: &[u8]) -> Vec<u8> {
        let a = BlobArchive {
            format,
            symbol,
            section: ".rodata.slm_weights",
            len: blob.len() as u64,
        };
        let mut out = Vec::new();
        a.head(&mut |b| out.extend_from_slice(b));
        let at = out.len();
        out.extend_from_slice(blob);
        a.tail(&mut |b| out.extend_from_slice(b));
        assert_eq!(out.len() as u64, a.archive_len());
        assert_eq!(
            (at - 8 - 60 - a.index_len() as usize - 60) as u64,
            DATA_OFFSET
        );
        out
    }

    fn u32le(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// Both word sizes and odd lengths: the blob sits at offset 64 of the object, the
    /// index points at the object's member header, section headers end the object.
    #[test]
    fn archive_layout_holds_the_blob_where_the_headers_say() {
        let x86 = ObjectFormat::for_target("x86_64", "linux", "unknown", "", "little").unwrap();
        let arm = ObjectFormat::for_target("arm", "none", "unknown", "eabihf", "little").unwrap();
        assert_eq!(arm.flags, 0x0500_0400);
        assert!(ObjectFormat::for_target("aarch64", "macos", "apple", "", "little").is_none());
        for format in [x86, arm] {
            for len in [0usize, 1, 63, 64, 1001] {
                let blob: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                for symbol in ["w", "slm_weights_ab"] {
                    let ar = archive(format, symbol, &blob);
                    assert_eq!(&ar[..8], ARCHIVE_MAGIC);
                    let index_off = u32::from_be_bytes([ar[72], ar[73], ar[74], ar[75]]) as usize;
                    assert_eq!(&ar[index_off..index_off + 10], b"weights.o/");
                    let obj = &ar[index_off + 60..];
                    assert_eq!(&obj[..4], b"\x7fELF");
                    assert_eq!(&obj[64..64 + len], &blob[..]);
                    let (shoff, shentsize) = if format.elf64 {
                        (u32le(obj, 0x28) as usize, 64)
                    } else {
                        (u32le(obj, 0x20) as usize, 40)
                    };
                    let blob_hdr = &obj[shoff + shentsize..];
                    let (off, size) = if format.elf64 {
                        (u32le(blob_hdr, 24) as usize, u32le(blob_hdr, 32) as usize)
                    } else {
                        (u32le(blob_hdr, 16) as usize, u32le(blob_hdr, 20) as usize)
                    };
                    assert_eq!((off, size), (64, len));
                    assert_eq!(shoff + 6 * shentsize, obj.len());
                }
            }
        }
    }
}
