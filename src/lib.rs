//! embedded-mqtt-broker: an embedded MQTT broker (rmqtt) for Node.js.
//!
//! JavaScript sees one class, [`server::MqttServer`]; everything else here is
//! the machinery behind it, one concept per module.

mod acl;
mod backpressure;
mod broker;
mod client_cert;
mod clients;
mod config;
mod conn_log;
mod decision;
mod decision_cache;
mod dispose;
mod drain;
mod enhanced_auth;
mod error;
mod fork;
mod hook_bridge;
mod hook_data;
mod hook_js;
mod hook_queue;
mod hook_table;
mod hooks;
mod js_value;
mod jwt;
mod keepalive;
mod limits;
mod listener;
mod logging;
mod memory;
mod message_properties;
mod messages;
mod metrics;
mod passwd;
mod policy;
mod publish;
mod reason_code;
mod redact;
mod retained;
mod server;
mod server_admin;
mod session_store;
mod shared_subscription;
mod stats;
mod stop_options;
mod storage;
mod subscription;
mod subscription_queue;
mod sys_topics;
mod system_error;
mod tls;
mod tls_source;
mod warning;
