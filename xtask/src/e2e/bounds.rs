//! The machine's own bounds, measured in the same run: `dd` buffered writes, loopback TCP, and a
//! cached file sent to a socket by read + write and by sendfile.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Result;

use super::median;

/// dd's buffered write rate for `bytes` written in `block`-byte writes, median of 3, each
/// started with no dirty pages.
pub(super) fn dd_bound(scratch: &Path, block: usize, bytes: u64) -> Result<f64> {
    let file = scratch.join("dd.bin");
    let mut rates = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_file(&file);
        settle(bytes);
        rates.push(crate::bench::dd(&[
            "if=/dev/zero",
            &format!("of={}", file.display()),
            &format!("bs={block}"),
            &format!("count={}", (bytes / block as u64).max(1)),
        ])?);
    }
    let _ = std::fs::remove_file(&file);
    Ok(median(rates))
}

/// The most memory [`settle`] warms.
const WARM_MAX: u64 = 4 << 30;

/// Brings the machine to the same state before every run: no dirty pages (`sync`), and a
/// quarter more than `bytes` of free memory that the host backs.
///
/// This VM returns free memory to its host (free page reporting, in 8 MiB blocks, about 2 s
/// after it is freed), and the first write to such a page faults on the host: a 1 GiB `dd bs=1M`
/// into the page cache runs at 0.5-0.8 GB/s on returned memory and at 4.5-4.9 GB/s on memory
/// freed a moment before. Which one a run got used to depend on what ran before it. Touching and
/// freeing the memory first gives every run, of every broker, the fast kind: the kernel hands
/// out unreported free pages before reported ones.
pub(super) fn settle(bytes: u64) {
    let _ = Command::new("sync").status();
    let len = usize::try_from(bytes.saturating_add(bytes / 4).min(WARM_MAX)).unwrap_or(0);
    let mut memory = Vec::<u8>::new();
    memory.resize(len, 1);
    std::hint::black_box(&memory);
}

/// Where a loopback transfer's sender takes its bytes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source<'a> {
    /// A buffer in memory: the network's own bound.
    Memory,
    /// A file in the page cache, read into a buffer and written (what Fjord's fetch does).
    FileReadWrite(&'a Path),
    /// A file in the page cache, sent with sendfile(2).
    FileSendfile(&'a Path),
}

/// Bytes per second through a loopback TCP connection (256 KiB at a time), median of 3.
pub(super) fn loopback_bandwidth(bytes: u64, source: Source<'_>) -> Result<f64> {
    const CHUNK: usize = 256 * 1024;
    let mut rates = Vec::new();
    for _ in 0..3 {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let reader = std::thread::spawn(move || -> Result<u64> {
            let (mut stream, _) = listener.accept()?;
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(total);
                }
                total += n as u64;
            }
        });
        let mut stream = TcpStream::connect(address)?;
        let mut buf = vec![7u8; CHUNK];
        let start = Instant::now();
        let mut sent = 0u64;
        match source {
            Source::Memory => {
                while sent < bytes {
                    stream.write_all(&buf)?;
                    sent += buf.len() as u64;
                }
            }
            Source::FileReadWrite(path) => {
                let file = std::fs::File::open(path)?;
                while sent < bytes {
                    let n = std::os::unix::fs::FileExt::read_at(&file, &mut buf, sent)?;
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n])?;
                    sent += n as u64;
                }
            }
            Source::FileSendfile(path) => {
                let file = std::fs::File::open(path)?;
                while sent < bytes {
                    if rustix::fs::sendfile(&stream, &file, Some(&mut sent), CHUNK)? == 0 {
                        break;
                    }
                }
            }
        }
        drop(stream);
        let received = reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
        rates.push(received as f64 / start.elapsed().as_secs_f64());
    }
    Ok(median(rates))
}

/// Cached file to loopback socket, by read + write and by sendfile: which one a fetch should
/// use on this machine.
pub(super) fn file_to_socket_bandwidth(scratch: &Path, bytes: u64) -> Result<(f64, f64)> {
    let path = scratch.join("cached.bin");
    {
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..bytes.div_ceil(1 << 20) {
            file.write_all(&chunk)?;
        }
    }
    std::fs::read(&path)?; // in the page cache before either is timed
    let read_write = loopback_bandwidth(bytes, Source::FileReadWrite(&path))?;
    let sendfile = loopback_bandwidth(bytes, Source::FileSendfile(&path))?;
    let _ = std::fs::remove_file(&path);
    Ok((read_write, sendfile))
}
