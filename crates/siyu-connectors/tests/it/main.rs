//! The connectors against real local servers (HTTP via axum, a small SMTP
//! server over TCP) and the dispatcher's retries and channel isolation.

mod config;
mod dispatch;
mod smtp;
mod support;
mod tencent;
mod webhook;
mod wechat;
mod wecom_callback;
mod wecom_ops;
mod wecom_sync;
