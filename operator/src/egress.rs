//! The emitter's NetworkPolicy: a pure builder beside the Deployment's (`desired`). An
//! emitter may leave its pod only for DNS and for the port of its Webhook's target, so a
//! Webhook's author cannot turn its emitter into a client of any other port in or
//! outside the cluster (the emitter's own SSRF guard covers addresses, this the ports).

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::desired::{self, DesiredError, Settings};
use hookline_api::webhook::Webhook;

const DNS_PORT: i32 = 53;

/// The port of an absolute http(s) URL: its explicit port, else the scheme's (80, 443).
/// `None` when the URL is not http(s) or its port is not a number from 1 to 65535.
pub fn url_port(url: &str) -> Option<u16> {
    let (rest, default) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, 443)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (rest, 80)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Userinfo may hold ':' and '@'; the host starts after the last '@'.
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let port = if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 literal: the port, if any, follows "]:".
        bracketed.split_once(']')?.1.strip_prefix(':')
    } else {
        host_port.rsplit_once(':').map(|(_, port)| port)
    };
    match port {
        None | Some("") => Some(default),
        Some(port) => port.parse::<u16>().ok().filter(|p| *p != 0),
    }
}

/// The TCP ports the emitter may connect to. `spec.url`'s port; for the default target
/// (the in-cluster handler Service) the Service's port and the handler pods' port too,
/// because engines such as Calico and Cilium judge Service traffic after it has been
/// translated to the pod's address and port. Empty when `spec.url`'s port is unusable:
/// the emitter could not deliver there anyway, and DNS only fails closed.
pub fn target_ports(webhook: &Webhook, settings: &Settings, id: &str) -> BTreeSet<u16> {
    let url = desired::target_url(&webhook.spec, settings, id);
    let mut ports: BTreeSet<u16> = url_port(&url).into_iter().collect();
    if webhook.spec.url.is_none() {
        ports.insert(settings.handler_pod_port);
    }
    ports
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(number)),
        ..NetworkPolicyPort::default()
    }
}

/// The NetworkPolicy `<name>-emitter`: selects this Webhook's emitter pods, restricts
/// their egress (only) to DNS over UDP and TCP and to the target's TCP ports, on any
/// address. Owned by the Webhook, so garbage collection removes it with the Deployment.
pub fn emitter_network_policy(
    webhook: &Webhook,
    settings: &Settings,
    id: &str,
) -> Result<NetworkPolicy, DesiredError> {
    let dns = NetworkPolicyEgressRule {
        ports: Some(vec![port("UDP", DNS_PORT), port("TCP", DNS_PORT)]),
        ..NetworkPolicyEgressRule::default()
    };
    let target_ports: Vec<NetworkPolicyPort> = target_ports(webhook, settings, id)
        .into_iter()
        .map(|p| port("TCP", i32::from(p)))
        .collect();
    let mut egress = vec![dns];
    // No rule rather than a rule without ports: a rule without ports allows every port.
    if !target_ports.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            ports: Some(target_ports),
            ..NetworkPolicyEgressRule::default()
        });
    }
    Ok(NetworkPolicy {
        metadata: desired::child_metadata(webhook, desired::emitter_name(webhook))?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(desired::selector_labels(webhook)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(egress),
            ingress: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self, settings, spec};
    use hookline_api::webhook::WebhookSpec;

    /// `shop/invoices` delivering to `url`, else to the in-cluster handler.
    fn webhook(url: Option<&str>) -> Webhook {
        test_support::webhook(WebhookSpec {
            url: url.map(str::to_owned),
            ..spec()
        })
    }

    /// (protocol, port) of every egress rule, in order.
    fn rules(policy: &NetworkPolicy) -> Vec<Vec<(String, i32)>> {
        let spec = policy.spec.as_ref().expect("spec");
        spec.egress
            .as_ref()
            .expect("egress")
            .iter()
            .map(|rule| {
                assert!(rule.to.is_none(), "ports only, to any address");
                rule.ports
                    .as_ref()
                    .expect("a rule without ports would allow every port")
                    .iter()
                    .map(|p| match (&p.protocol, &p.port) {
                        (Some(protocol), Some(IntOrString::Int(n))) => (protocol.clone(), *n),
                        other => panic!("unexpected port {other:?}"),
                    })
                    .collect()
            })
            .collect()
    }

    fn dns() -> Vec<(String, i32)> {
        vec![("UDP".into(), 53), ("TCP".into(), 53)]
    }

    #[test]
    fn url_ports_are_explicit_or_the_schemes() {
        for (url, port) in [
            ("https://receiver.example.com/in", Some(443)),
            ("http://receiver.example.com/in", Some(80)),
            ("https://receiver.example.com:8443/in?x=1", Some(8443)),
            ("http://receiver.example.com:/in", Some(80)),
            (
                "http://user:p@ss:w@receiver.example.com:9000/in",
                Some(9000),
            ),
            ("http://[2001:db8::1]:8080/in", Some(8080)),
            ("https://[2001:db8::1]/in", Some(443)),
            ("http://receiver.example.com?q=a:b", Some(80)),
            ("http://h:99999/in", None),
            ("http://h:0/in", None),
            ("http://h:http/in", None),
            ("ftp://h/in", None),
        ] {
            assert_eq!(url_port(url), port, "{url}");
        }
    }

    #[test]
    fn an_explicit_target_allows_dns_and_its_port_only() {
        let w = webhook(Some("https://receiver.example.com:8443/in"));
        let policy = emitter_network_policy(&w, &settings(), "7f6c-uid").expect("policy");
        assert_eq!(rules(&policy), [dns(), vec![("TCP".into(), 8443)]]);
        let spec = policy.spec.as_ref().expect("spec");
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Egress".to_owned()][..])
        );
        assert!(spec.ingress.is_none(), "ingress is not restricted by it");

        let w = webhook(Some("https://receiver.example.com/in"));
        let policy = emitter_network_policy(&w, &settings(), "7f6c-uid").expect("policy");
        assert_eq!(rules(&policy), [dns(), vec![("TCP".into(), 443)]]);
    }

    #[test]
    fn the_default_target_allows_the_handler_services_port_and_its_pods_port() {
        let settings = Settings {
            in_cluster_handler_url: "http://hookline-handler.hookline.svc:80".into(),
            handler_pod_port: 8080,
            ..settings()
        };
        let policy = emitter_network_policy(&webhook(None), &settings, "7f6c-uid").expect("policy");
        assert_eq!(
            rules(&policy),
            [dns(), vec![("TCP".into(), 80), ("TCP".into(), 8080)]]
        );
    }

    #[test]
    fn an_unusable_port_leaves_dns_only() {
        let w = webhook(Some("http://receiver.example.com:99999/in"));
        let policy = emitter_network_policy(&w, &settings(), "7f6c-uid").expect("policy");
        assert_eq!(rules(&policy), [dns()]);
    }

    #[test]
    fn it_selects_the_emitters_pods_and_is_owned_by_the_webhook() {
        let w = webhook(None);
        let policy = emitter_network_policy(&w, &settings(), "7f6c-uid").expect("policy");
        assert_eq!(policy.metadata.name.as_deref(), Some("invoices-emitter"));
        assert_eq!(policy.metadata.namespace.as_deref(), Some("shop"));
        let owner = &policy.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Webhook", "7f6c-uid")
        );
        assert_eq!(owner.controller, Some(true));
        let deployment = desired::emitter_deployment(&w, &settings(), "7f6c-uid").expect("d");
        let pod_labels = deployment
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .expect("pod labels");
        let selector = policy
            .spec
            .and_then(|s| s.pod_selector)
            .and_then(|s| s.match_labels)
            .expect("selector");
        assert!(
            selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "the policy selects the emitter's pods"
        );
    }

    #[test]
    fn emitter_pods_carry_the_labels_the_charts_handler_policy_admits() {
        // helm/hookline/templates/networkpolicy.yaml lets emitters reach the handler by
        // these two labels (dev/chart-test.sh checks the chart's side).
        let labels = desired::labels(&webhook(None));
        assert_eq!(
            labels
                .get("app.kubernetes.io/component")
                .map(String::as_str),
            Some("emitter")
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("hookline-operator")
        );
    }

    #[test]
    fn a_webhook_not_read_from_the_server_is_refused() {
        let w = Webhook::new("x", webhook(None).spec);
        assert!(emitter_network_policy(&w, &settings(), "id").is_err());
    }
}
