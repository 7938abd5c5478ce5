//! embedded-mqtt-broker: an embedded MQTT broker (rmqtt) for Node.js.
//!
//! JavaScript sees one class, [`server::MqttServer`]; everything else here is
//! the machinery behind it, one concept per module.

mod backpressure;
mod broker;
mod config;
mod drain;
mod error;
mod fork;
mod hook_bridge;
mod hook_data;
mod hook_js;
mod hook_queue;
mod hook_table;
mod hooks;
mod js_value;
mod keepalive;
mod listener;
mod logging;
mod memory;
mod message_properties;
mod publish;
mod server;
mod shared_subscription;
mod stop_options;
mod storage;
mod tls;
mod warning;
