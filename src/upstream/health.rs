//! Periodic `GET <v2_prefix>/` per backend, feeding `dockgate_backend_up`.
//! 200 and 401 both mean "alive": an authenticating backend still answers.

use crate::state::Shared;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;

pub struct HealthCheck {
    pub shared: Arc<Shared>,
}

impl HealthCheck {
    /// One round over every backend.
    pub async fn check_all(&self, connector: &Connector) {
        let rt = self.shared.snapshot();
        for (name, b) in &rt.cfg.backends {
            // `{repo}` in a prefix needs some repository on this backend.
            let key = rt
                .cfg
                .repositories
                .values()
                .find(|r| &r.backend.name == name)
                .map(|r| r.key.clone())
                .unwrap_or_default();
            let path = format!("{}/", b.v2_prefix_for(&key));
            let peer = rt.peers.peer(b);
            let up = match super::get(connector, &peer, b, &path, 64 << 10).await {
                Ok((head, _)) => {
                    if let Ok(mut set) = self.shared.auth_required.lock() {
                        if head.status.as_u16() == 401 {
                            set.insert(name.clone());
                            let auths = [b.authority.clone()];
                            for v in head.headers.get_all(http::header::WWW_AUTHENTICATE) {
                                let realm = v
                                    .to_str()
                                    .ok()
                                    .and_then(|v| crate::rewrite::response::realm_path(&auths, v));
                                if let Some(p) = realm {
                                    self.shared.realms.learn(name, p);
                                }
                            }
                        } else {
                            set.remove(name);
                        }
                    }
                    matches!(head.status.as_u16(), 200 | 401)
                }
                Err(e) => {
                    tracing::debug!(backend = %name, error = %e, "health check failed");
                    false
                }
            };
            let gauge = self
                .shared
                .metrics
                .backend_up
                .with_label_values(&[name.as_str()]);
            if gauge.get() == 1 && !up {
                tracing::warn!(backend = %name, "backend is down");
            }
            if !up {
                self.shared
                    .metrics
                    .upstream_errors
                    .with_label_values(&[name.as_str(), "health_check"])
                    .inc();
            }
            gauge.set(up as i64);
        }
    }
}

#[async_trait]
impl BackgroundService for HealthCheck {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.check_all(&self.shared.connector).await;
            let rt = self.shared.snapshot();
            tokio::select! {
                _ = tokio::time::sleep(rt.cfg.metrics.health_check_interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
