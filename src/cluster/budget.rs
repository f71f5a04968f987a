//! The week's budget as the cluster desk sees it: a port ([`Budget`]) that says whether a
//! launch of `count` more workers would push the week's projected cost over the budget. The
//! calendar, which knows the plan and the ledger, answers it (`calendar::budget`); the desk
//! asks before every launch by hand and refuses one over budget unless the admin overrides it.
use futures_util::future::BoxFuture;

/// A launch would bring the week's projection to `projected`, over `budget` (dollars).
#[derive(Debug, Clone, PartialEq)]
pub struct OverBudget {
    pub projected: f64,
    pub budget: f64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this launch would bring the week's projected cost to ${:.2}, over its budget of ${:.2}",
            self.projected, self.budget
        )
    }
}

/// Whether `count` more workers launched now would pass the week's budget.
pub trait Budget: Send + Sync {
    fn over_with(&self, count: u32) -> BoxFuture<'_, anyhow::Result<Option<OverBudget>>>;
}

/// No budget: every launch fits.
pub struct NoBudget;

impl Budget for NoBudget {
    fn over_with(&self, _count: u32) -> BoxFuture<'_, anyhow::Result<Option<OverBudget>>> {
        Box::pin(async { Ok(None) })
    }
}
