//! A file's identity: its size and an xxh3-128 hash of its bytes, read in 1 MiB chunks on a
//! blocking thread (a 1 GB file takes about a second, once, before anything is sent).

use std::io::Read;
use std::path::Path;

use crate::ledger::Identity;

pub async fn of_file(pipeline: &str, name: &str, path: &Path) -> std::io::Result<Identity> {
    let path = path.to_path_buf();
    let (size, hash) = tokio::task::spawn_blocking(move || hash_file(&path))
        .await
        .map_err(std::io::Error::other)??;
    Ok(Identity { pipeline: pipeline.to_string(), name: name.to_string(), size, hash })
}

pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, format!("xxh3:{:032x}", hasher.digest128())))
}
