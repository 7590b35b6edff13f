//! Topic configs (Kafka's `ConfigurationControlManager`): AlterConfigs and
//! IncrementalAlterConfigs for topics.

use std::collections::BTreeMap;

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::record::{ConfigResource, MetadataRecord};
use crate::topic_config;

/// One change of IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set the value.
    Set(String),
    /// Remove the value (back to the default).
    Delete,
    /// Add items to a list.
    Append(String),
    /// Remove items from a list.
    Subtract(String),
}

/// Decides a topic's IncrementalAlterConfigs (or, with `replace_all`, AlterConfigs, which
/// replaces every config).
pub fn alter_topic_configs(
    image: &MetadataImage,
    topic: &str,
    changes: &[(String, ConfigOp)],
    replace_all: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let current = &image.topics.get(topic).ok_or_else(|| ControllerError::UnknownTopic(topic.to_owned()))?.configs;
    let mut next = if replace_all { BTreeMap::new() } else { current.clone() };
    for (name, op) in changes {
        let def = topic_config::definition(name)
            .ok_or_else(|| ControllerError::InvalidConfig(format!("Unknown topic config name: {name}")))?;
        let list = || -> Vec<String> {
            next.get(name).map(String::as_str).unwrap_or(def.default).split(',').map(|s| s.trim().to_owned()).collect()
        };
        match op {
            ConfigOp::Set(value) => {
                topic_config::validate(name, value)?;
                next.insert(name.clone(), value.clone());
            }
            ConfigOp::Delete => {
                next.remove(name);
            }
            ConfigOp::Append(items) | ConfigOp::Subtract(items) => {
                if def.ty != topic_config::ConfigType::List {
                    return Err(ControllerError::InvalidConfig(format!(
                        "Config value append/subtract is not allowed for config {name} as it is not a list"
                    )));
                }
                let mut values = list();
                for item in items.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if matches!(op, ConfigOp::Append(_)) {
                        if !values.iter().any(|v| v == item) {
                            values.push(item.to_owned());
                        }
                    } else {
                        values.retain(|v| v != item);
                    }
                }
                let joined = values.join(",");
                topic_config::validate(name, &joined)?;
                next.insert(name.clone(), joined);
            }
        }
    }
    let resource = ConfigResource::Topic(topic.to_owned());
    let mut records = Vec::new();
    for (name, value) in &next {
        if current.get(name) != Some(value) {
            records.push(MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
    }
    for name in current.keys().filter(|n| !next.contains_key(*n)) {
        records.push(MetadataRecord::Config { resource: resource.clone(), name: name.clone(), value: None });
    }
    Ok(records)
}
