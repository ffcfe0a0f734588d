//! Logging: compact text when standard output is a terminal (a person reading), JSON lines
//! otherwise (a collector reading); `AMTSPLATZ_LOG_FORMAT=json|text` decides instead. Filtered by
//! `RUST_LOG` (default `info,sqlx=warn,sea_orm=warn`). Every event inside a request carries the
//! request span: `request_id`, `tenant.id`, `user.id`. Never log tokens, passwords or personal data.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// The format `setting` names, else text for a terminal and JSON for anything else.
pub fn choose(setting: Option<LogFormat>, stdout_is_terminal: bool) -> LogFormat {
    setting.unwrap_or(if stdout_is_terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    })
}

/// [`choose`] for this process's standard output.
pub fn format_for_stdout(setting: Option<LogFormat>) -> LogFormat {
    choose(setting, std::io::stdout().is_terminal())
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        // Colours only for a terminal: text logs written to a file or pipe stay plain.
        LogFormat::Text => builder
            .compact()
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_text_anything_else_json_unless_the_setting_names_one() {
        assert_eq!(choose(None, true), LogFormat::Text);
        assert_eq!(choose(None, false), LogFormat::Json);
        assert_eq!(choose(Some(LogFormat::Json), true), LogFormat::Json);
        assert_eq!(choose(Some(LogFormat::Text), false), LogFormat::Text);
    }
}
