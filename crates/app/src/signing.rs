//! Signing a message as the gateway does: find the author's tenant, decide (`docs/reference.md`,
//! "Which mail is signed"), open the key, sign.

use std::collections::HashMap;

use signet_keys::{DomainName, TenantName};
use signet_signer::{Decision, SigningPolicy, TenantView, author_domain, decide, sign};

use crate::{AppError, Clock, Dns, Result, Service};

/// What happened to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignOutcome {
    /// The `DKIM-Signature` header to put in front of the message, and who signed.
    Signed {
        header: String,
        domain: DomainName,
        selector: String,
    },
    /// Passed on unsigned, with the reason (intra-organisation mail, no key).
    Unsigned(String),
}

impl<D: Dns, C: Clock> Service<D, C> {
    /// Signs `message` for delivery to `recipients` (their domains), as the relay will.
    /// `tenant` is the sending client's tenant (from its connector); the author domain must be
    /// one of its accepted domains, so no tenant ever signs with another's key. Without a
    /// tenant (`signet sign`), the author domain's tenant is used. A message whose author
    /// domain is not accepted is refused (`AppError::Refused`).
    pub async fn sign_message(
        &self,
        message: &[u8],
        recipients: &[DomainName],
        policy: &SigningPolicy,
        tenant: Option<&TenantName>,
    ) -> Result<SignOutcome> {
        let author = author_domain(message).map_err(|e| AppError::Refused(e.to_string()))?;
        let view = self.tenant_view(&author, recipients).await?;
        let view = match (view, tenant) {
            (Some(view), Some(client)) if view.tenant != *client => {
                return Err(AppError::Refused(format!(
                    "{author} is not an accepted domain of tenant '{client}'"
                )));
            }
            (view, _) => view,
        };
        let plan = match view {
            None => {
                let reason = format!("{author} is not an accepted domain of any tenant");
                if policy.refuse_unaccepted {
                    return Err(AppError::Refused(reason));
                }
                return Ok(SignOutcome::Unsigned(reason));
            }
            Some(view) => match decide(&view, &author, recipients, policy) {
                Decision::Sign(plan) => plan,
                Decision::Unsigned(reason) => return Ok(SignOutcome::Unsigned(reason)),
                Decision::Refuse(reason) => return Err(AppError::Refused(reason)),
            },
        };
        let key = self.signing_key(&plan.key).await?;
        let header = sign(message, &plan, &key).map_err(|e| AppError::Refused(e.to_string()))?;
        Ok(SignOutcome::Signed {
            header,
            domain: plan.domain,
            selector: plan.selector,
        })
    }

    /// What the signing decision needs about the tenant that accepted `author`: the author's
    /// config, the initial domain's (default signing), and which recipients' domains are the
    /// tenant's own (intra-organisation mail). A few lookups, however many domains the tenant
    /// has.
    async fn tenant_view(
        &self,
        author: &DomainName,
        recipients: &[DomainName],
    ) -> Result<Option<TenantView>> {
        let Some(accepted) = self.cached_domain(author).await? else {
            return Ok(None);
        };
        let tenant = accepted.tenant;
        let initial_domain = self.settings.zone.initial_domain(&tenant)?;
        let mut domains = HashMap::new();
        for name in [author, &initial_domain] {
            if !domains.contains_key(name) {
                domains.insert(name.clone(), self.cached_config(name).await?);
            }
        }
        for recipient in recipients {
            if domains.contains_key(recipient) {
                continue;
            }
            if self
                .cached_domain(recipient)
                .await?
                .is_some_and(|d| d.tenant == tenant)
            {
                // Membership is all the decision asks of a recipient's domain.
                domains.insert(recipient.clone(), None);
            }
        }
        Ok(Some(TenantView {
            tenant,
            initial_domain,
            domains,
        }))
    }
}
