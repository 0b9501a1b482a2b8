//! `narfs key generate`: the signing key an operator gives `narfs serve --sign-key`, in
//! either dialect's own file format, so narfs can stand in for `nix-serve` or `guix
//! publish` without their tools: Nix's `nix-store --generate-binary-cache-key` files
//! (`<name>:<base64>`), Guix's `signing-key.sec`/`.pub` S-expressions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use narfs_nix::signing::{GuixSecretKey, NixSecretKey};

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Make a new signing key: the secret file (mode 0600, never over an existing
    /// file) and its public half (to --public, else on stdout).
    Generate(GenerateArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `<name>:<base64>` files, as `nix-store --generate-binary-cache-key` writes.
    Nix,
    /// `signing-key.sec`/`.pub` S-expressions, as `guix archive --generate-key` writes.
    Guix,
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Whose key format.
    #[arg(long, value_enum)]
    pub dialect: Dialect,
    /// The key's name (Nix: what `Sig:` lines and `trusted-public-keys` start with,
    /// e.g. cache.example.org-1). Guix keys have no name.
    pub name: Option<String>,
    /// The secret key file to create.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The public key file to create (default: print it on stdout).
    #[arg(long)]
    pub public: Option<PathBuf>,
}

pub fn run(c: KeyCommand) -> Result<()> {
    let KeyCommand::Generate(a) = c;
    let (secret, public) = match (a.dialect, &a.name) {
        (Dialect::Nix, Some(name)) => {
            let key = NixSecretKey::generate(name).context("cannot make a Nix key")?;
            (key.to_file_text(), key.public().to_string())
        }
        (Dialect::Nix, None) => anyhow::bail!("a Nix key needs a NAME, e.g. cache.example.org-1"),
        (Dialect::Guix, None) => {
            let key = GuixSecretKey::generate().context("cannot make a Guix key")?;
            (key.to_sexp(), key.public().to_sexp())
        }
        (Dialect::Guix, Some(_)) => anyhow::bail!("a Guix key has no NAME"),
    };
    if let Some(p) = &a.public {
        // Both refused before either is written when one is there already.
        for f in [&a.output, p] {
            if f.symlink_metadata().is_ok() {
                anyhow::bail!("{} already exists: not overwritten", f.display());
            }
        }
    }
    crate::io::write_new(&a.output, secret.as_bytes(), 0o600)?;
    match &a.public {
        Some(p) => {
            if let Err(e) = crate::io::write_new(p, public.as_bytes(), 0o644) {
                // The secret was created just now, by us: no key half is left alone.
                let _ = std::fs::remove_file(&a.output);
                return Err(e);
            }
        }
        None => println!("{}", public.trim_end()),
    }
    Ok(())
}
