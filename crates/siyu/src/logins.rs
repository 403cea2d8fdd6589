//! `siyu logins`: console logins (admin, operator, analyst) for a store
//! served by `siyu serve`, which makes none itself. The console's admins
//! manage further logins in Settings; this is how the first one is made.
//! Passwords are read from stdin, never from a flag (flags show up in
//! `ps` and shell history).

use crate::data::StoreArgs;
use anyhow::{Context, Result};
use siyu_console::{accounts, OperatorRole};
use std::io::BufRead;

#[derive(clap::Subcommand)]
pub enum LoginsCommand {
    /// Create a console login, or set the password and role of an existing
    /// one. The password is the first line of stdin (8..256 characters):
    /// `printf '%s\n' "$PASSWORD" | siyu logins add admin --role admin`.
    /// A running server on the same store accepts it at once.
    Add {
        /// 1..32 characters of a-z, 0-9, `_`, `.`, `-`.
        login: String,
        /// admin (everything, including keys and logins), operator (send
        /// events, write definitions, sends) or analyst (read only).
        #[arg(long, value_parser = role)]
        role: OperatorRole,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the console logins and their roles.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn role(given: &str) -> Result<OperatorRole, String> {
    OperatorRole::parse(given)
        .ok_or_else(|| format!("`{given}` is not a role: use admin, operator or analyst"))
}

pub fn run(cmd: LoginsCommand) -> Result<()> {
    match cmd {
        LoginsCommand::Add { login, role, store } => {
            accounts::validate_login(&login).map_err(|e| anyhow::anyhow!("{e}"))?;
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("password for {login} (shown as you type; or pipe it in): ");
            }
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let hash = accounts::new_password_hash(password)
                .map_err(|e| anyhow::anyhow!("the password on stdin: {e}"))?;
            let mut s = store.open()?;
            let existed = accounts::get_operator(s.as_mut(), &login)
                .context("reading the logins")?
                .is_some();
            accounts::save_operator(
                s.as_mut(),
                &login,
                hash,
                role,
                siyu_server::writer::wall_clock(),
            )
            .context("saving the login")?;
            println!(
                "console login `{login}` {} with role {}",
                if existed { "updated" } else { "created" },
                role.as_str()
            );
            Ok(())
        }
        LoginsCommand::List { store } => {
            let mut s = store.open()?;
            for (login, role, _) in
                accounts::list_operators(s.as_mut()).context("reading the logins")?
            {
                println!("{login}\t{}", role.as_str());
            }
            Ok(())
        }
    }
}
