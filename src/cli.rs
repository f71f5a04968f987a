//! Command line.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hubdesk",
    version,
    about = "The front desk of a teaching JupyterHub"
)]
pub struct Cli {
    /// TOML configuration file (default: ./hubdesk.toml if present).
    #[arg(long, global = true, env = "HUBDESK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage admin accounts.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// OpenID Connect helpers.
    Oidc {
        #[command(subcommand)]
        action: OidcAction,
    },
    /// Print the single-thread argon2 verify time at the configured parameters.
    BenchHash {
        #[arg(long, default_value_t = 15)]
        rounds: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create an admin account.
    Create {
        name: String,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OidcAction {
    /// Print a new random client secret (URL-safe characters only).
    NewSecret,
    /// Make a new id_token signing key: published at once, used for signing after 6 minutes;
    /// the old one stays in JWKS for a day.
    RotateKey,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create an API token; it is printed once.
    Create { name: String },
}
