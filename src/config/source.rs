//! `source = { kind = "folder" | "s3", ... }` -> [`SourceSettings`].

use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::raw::{OneOrMany, RawSource};
use super::settings::*;
use super::validate::{Ctx, Purpose};

impl Ctx<'_> {
    pub(super) fn source(
        &mut self,
        pname: &str,
        raw: &Spanned<RawSource>,
    ) -> Option<SourceSettings> {
        let span = raw.span();
        let raw = raw.get_ref();
        let patterns = self.patterns(pname, raw, span.clone());
        match raw.kind.get_ref().as_str() {
            "folder" => self.folder(pname, raw, patterns, span).map(SourceSettings::Folder),
            "s3" => self.s3(pname, raw, patterns, span).map(SourceSettings::S3),
            other => {
                self.problem(
                    raw.kind.span(),
                    format!("pipeline `{pname}`: source kind `{other}` is not folder or s3"),
                );
                None
            }
        }
    }

    /// `pattern`: default `*.csv`, `*.csv.gz`, `*.tsv`, `*.txt` and every workbook kind
    /// (SPEC §4).
    fn patterns(&mut self, pname: &str, raw: &RawSource, span: Range<usize>) -> Vec<glob::Pattern> {
        let texts = raw.pattern.clone().map_or_else(
            || DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect(),
            OneOrMany::into_vec,
        );
        let mut patterns = Vec::new();
        for t in texts {
            match glob::Pattern::new(&t) {
                Ok(p) => patterns.push(p),
                Err(e) => self.problem(
                    span.clone(),
                    format!("pipeline `{pname}`: pattern `{t}` is not a glob: {e}"),
                ),
            }
        }
        patterns
    }

    fn folder(
        &mut self,
        pname: &str,
        raw: &RawSource,
        patterns: Vec<glob::Pattern>,
        span: Range<usize>,
    ) -> Option<FolderSettings> {
        let s3_only = [
            ("bucket", raw.bucket.is_some()),
            ("prefix", raw.prefix.is_some()),
            ("endpoint", raw.endpoint.is_some()),
            ("region", raw.region.is_some()),
            ("queue_url", raw.queue_url.is_some()),
        ];
        for (key, present) in s3_only {
            if present {
                self.problem(
                    span.clone(),
                    format!("pipeline `{pname}`: source key `{key}` applies only to kind = \"s3\""),
                );
            }
        }
        let Some(path) = &raw.path else {
            self.problem(span, format!("pipeline `{pname}`: a folder source needs `path`"));
            return None;
        };
        let expanded = self.expand("path", path);
        let path = self.relative(&expanded);
        self.folder_exists(pname, &path, span);
        let key = |k: &str| format!("pipelines.{pname}.source.{k}");
        Some(FolderSettings {
            path,
            patterns,
            settle: self.duration(&key("settle"), &raw.settle, DEFAULT_SETTLE),
            rescan_interval: self.nonzero_duration(
                &key("rescan_interval"),
                &raw.rescan_interval,
                DEFAULT_RESCAN,
                "would rescan the folder without a pause",
            ),
        })
    }

    fn s3(
        &mut self,
        pname: &str,
        raw: &RawSource,
        patterns: Vec<glob::Pattern>,
        span: Range<usize>,
    ) -> Option<S3Settings> {
        let Some(bucket) = &raw.bucket else {
            self.problem(span, format!("pipeline `{pname}`: an s3 source needs `bucket`"));
            return None;
        };
        let bucket = self.expand("bucket", bucket);
        let endpoint = raw.endpoint.as_ref().map(|e| self.expand("endpoint", e));
        let queue_url = raw.queue_url.as_ref().map(|q| self.expand("queue_url", q));
        let mut prefix = raw.prefix.clone().unwrap_or_default();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let key = |k: &str| format!("pipelines.{pname}.source.{k}");
        let no_pause = "would list the bucket without a pause";
        let poll_interval = self.nonzero_duration(
            &key("poll_interval"),
            &raw.poll_interval,
            DEFAULT_S3_POLL,
            no_pause,
        );
        // With a queue, events find new objects; the listing only catches lost ones.
        let rescan_default = if queue_url.is_some() { DEFAULT_QUEUE_RESCAN } else { poll_interval };
        Some(S3Settings {
            patterns,
            bucket,
            prefix,
            region: raw.region.clone(),
            force_path_style: raw.force_path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            poll_interval,
            rescan_interval: self.nonzero_duration(
                &key("rescan_interval"),
                &raw.rescan_interval,
                rescan_default,
                no_pause,
            ),
            queue_url,
            lease_ttl: self.lease_ttl(&key("lease_ttl"), raw),
        })
    }

    /// `lease_ttl`: at least [`MIN_LEASE_TTL`].
    fn lease_ttl(&mut self, key: &str, raw: &RawSource) -> std::time::Duration {
        let ttl = self.duration(key, &raw.lease_ttl, DEFAULT_LEASE_TTL);
        if ttl < MIN_LEASE_TTL {
            let span = raw.lease_ttl.as_ref().map(|s| s.span()).unwrap_or_default();
            let min = humantime::format_duration(MIN_LEASE_TTL);
            self.problem(
                span,
                format!("`{key}` must be at least {min}: a lease is renewed every third of it"),
            );
            return DEFAULT_LEASE_TTL;
        }
        ttl
    }

    /// A folder source must exist (a mistyped path is not silently created and watched);
    /// `plan` reads one file and only warns.
    fn folder_exists(&mut self, pname: &str, path: &Path, span: Range<usize>) {
        if path.is_dir() {
            return;
        }
        let why = format!(
            "pipeline `{pname}`: source folder {} does not exist (create it, or fix `path`)",
            path.display()
        );
        match self.purpose {
            Purpose::Plan => self.warn(span, why),
            _ => self.problem(span, why),
        }
    }
}

/// What a folder or bucket picks up when `pattern` is not set.
pub const DEFAULT_PATTERNS: [&str; 9] =
    ["*.csv", "*.csv.gz", "*.tsv", "*.txt", "*.xlsx", "*.xlsm", "*.xlsb", "*.xls", "*.ods"];
