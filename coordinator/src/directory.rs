//! Who is who, shared between the HTTP API (tokens → accounts) and the webhook dispatcher
//! (accounts → their webhook URL). Filled from the store at start and kept current as
//! accounts are created; the cluster actor stays the owner of the accounts themselves.

use crate::core::billing::Account;
use gpuspot_common::AccountId;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Debug, Default)]
pub struct Directory {
    tokens: RwLock<HashMap<String, AccountId>>,
    webhooks: RwLock<HashMap<AccountId, String>>,
}

/// What is stored for a token: its sha256, never the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new API token for an account.
pub fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("gst_{}", hex::encode(bytes))
}

impl Directory {
    /// Adds an account read at start or just created.
    pub fn add(&self, account: &Account) {
        if !account.token_hash.is_empty() && !account.disabled {
            let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
            tokens.insert(account.token_hash.clone(), account.id.clone());
        }
        if let Some(url) = &account.webhook_url {
            let mut webhooks = self.webhooks.write().unwrap_or_else(|p| p.into_inner());
            webhooks.insert(account.id.clone(), url.clone());
        }
    }

    /// After a token rotation or a change of `disabled` or `webhook_url`: the account's old
    /// token stops resolving at once, and the current one resolves unless the account is
    /// disabled; events go to the current webhook only.
    pub fn set(&self, account: &Account) {
        {
            let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
            tokens.retain(|_, owner| owner != &account.id);
        }
        {
            let mut webhooks = self.webhooks.write().unwrap_or_else(|p| p.into_inner());
            webhooks.remove(&account.id);
        }
        self.add(account);
    }

    pub fn account_for_token(&self, token: &str) -> Option<AccountId> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens.get(&token_hash(token)).cloned()
    }

    pub fn webhook_of(&self, account: &AccountId) -> Option<String> {
        let webhooks = self.webhooks.read().unwrap_or_else(|p| p.into_inner());
        webhooks.get(account).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use gpuspot_common::Money;

    #[test]
    fn tokens_resolve_to_their_account_only() {
        let directory = Directory::default();
        let token = new_token();
        directory.add(&Account {
            id: AccountId::from("a-1"),
            name: "acme".into(),
            balance: Money::ZERO,
            token_hash: token_hash(&token),
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            email: None,
            overdue_since: None,
            overdue_deadline: None,
            created_at: Utc::now(),
            unlimited: false,
            disabled: false,
            quota: None,
        });
        assert_eq!(directory.account_for_token(&token), Some(AccountId::from("a-1")));
        assert_eq!(directory.account_for_token("gst_nope"), None);
        let rotated = new_token();
        let mut account = Account {
            id: AccountId::from("a-1"),
            name: "acme".into(),
            balance: Money::ZERO,
            token_hash: token_hash(&rotated),
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            email: None,
            overdue_since: None,
            overdue_deadline: None,
            created_at: Utc::now(),
            unlimited: false,
            disabled: false,
            quota: None,
        };
        directory.set(&account);
        assert_eq!(directory.account_for_token(&token), None, "the old token stops at once");
        assert_eq!(directory.account_for_token(&rotated), Some(AccountId::from("a-1")));
        account.disabled = true;
        directory.set(&account);
        assert_eq!(directory.account_for_token(&rotated), None, "a disabled account's token");
        assert_eq!(
            directory.webhook_of(&AccountId::from("a-1")).as_deref(),
            Some("http://127.0.0.1:9/hook")
        );
        account.webhook_url = None;
        directory.set(&account);
        assert_eq!(directory.webhook_of(&AccountId::from("a-1")), None, "a cleared webhook");
    }
}
