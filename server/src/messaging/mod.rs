//! Messaging: the mailbox of each application and the notification outbox with its SMTP worker.

pub mod mailbox;
pub mod outbox;
