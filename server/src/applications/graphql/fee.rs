//! The `Fee` object, a leaf: payments show an application's fees too, and the rest of
//! applications' GraphQL names payments' types.

use async_graphql::SimpleObject;

use crate::applications::rules::FeeLine;

#[derive(SimpleObject)]
pub struct Fee {
    pub key: String,
    pub label: String,
    pub amount_cents: i64,
}

impl From<FeeLine> for Fee {
    fn from(f: FeeLine) -> Self {
        Self {
            key: f.key,
            label: f.label,
            amount_cents: f.amount_cents,
        }
    }
}
