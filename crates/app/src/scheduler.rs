//! One scheduler pass (`signet tick`, and the loop inside `signet serve`): CNAME checks,
//! switch-overs, retirements and automatic rotations.

use serde_json::json;
use signet_keys::{
    CnameCheck, DkimRecord, DomainKind, DomainName, RotationRecord, SigningConfig, Transition,
    customer_selector_name,
};

use crate::{Clock, Dns, Result, Service, audit_view};

/// What one pass did, a line per event, for logs and `signet tick`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub events: Vec<String>,
}

/// What the scheduler saw in DNS for one config, gathered before any transaction.
struct Observations {
    check: Option<CnameCheck>,
    new_key_visible: bool,
}

impl<D: Dns, C: Clock> Service<D, C> {
    /// Runs one pass over every config. A failure on one domain is reported and the pass goes
    /// on with the next.
    pub async fn tick(&self) -> Result<TickReport> {
        let configs = self.store.begin().await?.configs().await?;
        let mut report = TickReport::default();
        for config in configs {
            if let Err(e) = self.tick_one(&config, &mut report).await {
                report
                    .events
                    .push(format!("{}: not processed: {e}", config.domain));
            }
        }
        Ok(report)
    }

    async fn tick_one(&self, seen: &SigningConfig, report: &mut TickReport) -> Result<()> {
        let first_event = report.events.len();
        let observations = self.observe(seen, report).await;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        let Some(before) = tx.config(&seen.domain).await? else {
            return Ok(());
        };
        let mut after = before.clone();
        if let Some(check) = observations.check {
            after.cname_check = Some(check);
        }
        let (slots, transitions) =
            after
                .slots
                .advance(&self.settings.rotation, now, observations.new_key_visible);
        after.slots = slots;
        for transition in &transitions {
            report.events.push(describe(&after.domain, transition));
        }
        let mut new_keys = Vec::new();
        if let Some(interval) = after.rotation_interval.or(self.settings.rotation_interval)
            && after.enabled
            && after.slots.automatic_rotation_due(interval, now)
            && let Some((slot, signing)) = after.slots.signing()
        {
            let key = self.make_key(signing.public.spec)?;
            let next = slot.other();
            let (slots, _) = after.slots.begin_rotation(
                key.id.clone(),
                key.public.clone(),
                now,
                self.settings.rotation.delay,
            )?;
            after.slots = slots;
            after.last_rotation = Some(RotationRecord {
                rotate_on: now.plus(self.settings.rotation.delay),
                before: slot,
                after: next,
            });
            new_keys.push((key.id, key.sealed));
            report.events.push(format!(
                "{}: automatic rotation started, {next} takes over on or after {}",
                after.domain,
                now.plus(self.settings.rotation.delay)
            ));
        }
        if after == before {
            return Ok(());
        }
        if after.status() != before.status() {
            report.events.push(format!(
                "{}: status {} -> {}",
                after.domain,
                before.status(),
                after.status()
            ));
        }
        tx.save_config(&after, &new_keys).await?;
        if !only_checked_again(&before, &after) {
            let events = &report.events[first_event..];
            let detail = json!({ "before": audit_view(&before), "after": audit_view(&after), "events": events });
            self.record(&mut tx, "scheduler.tick", Some(&after.domain), detail)
                .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Makes the lookups this config needs now: a CNAME check when due, and the visibility of
    /// a key waiting to switch.
    async fn observe(&self, config: &SigningConfig, report: &mut TickReport) -> Observations {
        let now = self.clock.now();
        let check_due = config.kind == DomainKind::Custom
            && config
                .cname_check
                .as_ref()
                .is_none_or(|c| c.at.plus(self.settings.check_interval) <= now);
        let check = if check_due {
            match self.check_cnames(config).await {
                Ok(check) => Some(check),
                Err(e) => {
                    report.events.push(format!(
                        "{}: CNAME check failed, status kept: {e}",
                        config.domain
                    ));
                    None
                }
            }
        } else {
            None
        };
        let new_key_visible = match config.slots.switch_due(now) {
            Some(slot) => self.new_key_visible(config, slot, report).await,
            None => false,
        };
        Observations {
            check,
            new_key_visible,
        }
    }

    /// A key may sign only once verifiers can find it. For an enabled custom domain that means
    /// seen through the customer's CNAME by our resolver; otherwise mail is signed with the
    /// initial domain, whose names signet serves itself.
    async fn new_key_visible(
        &self,
        config: &SigningConfig,
        slot: signet_keys::Slot,
        report: &mut TickReport,
    ) -> bool {
        if !(config.kind == DomainKind::Custom && config.enabled) {
            return true;
        }
        let Some(key) = config.slots.get(slot) else {
            return false;
        };
        let expected = key.public.record();
        let name = customer_selector_name(&config.domain, slot);
        match self.dns.txt(&name).await {
            Ok(values) => {
                let visible = values
                    .iter()
                    .any(|v| v.parse::<DkimRecord>().is_ok_and(|r| r == expected));
                if !visible {
                    report.events.push(format!(
                        "{}: switch to {slot} waits: the new key is not yet visible at {name}",
                        config.domain
                    ));
                }
                visible
            }
            Err(e) => {
                report.events.push(format!(
                    "{}: switch to {slot} waits: lookup of {name} failed: {e}",
                    config.domain
                ));
                false
            }
        }
    }
}

/// Whether the pass only re-checked the CNAMEs and found them as before: the time of the check
/// is kept (`LastChecked`), but nothing changed that the audit log should show.
fn only_checked_again(before: &SigningConfig, after: &SigningConfig) -> bool {
    let (Some(old), Some(new)) = (&before.cname_check, &after.cname_check) else {
        return false;
    };
    let mut same = after.clone();
    same.cname_check = Some(CnameCheck {
        at: old.at,
        ..new.clone()
    });
    same.changed = before.changed;
    same == *before
}

fn describe(domain: &DomainName, transition: &Transition) -> String {
    match transition {
        Transition::SwitchedOver { from, to } => {
            format!("{domain}: switched signing from {from} to {to}")
        }
        Transition::Retired { slot, .. } => {
            format!("{domain}: retired the old key in {slot}; its record is withdrawn")
        }
    }
}
