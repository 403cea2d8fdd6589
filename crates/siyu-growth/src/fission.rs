//! Fission (裂变) campaigns: what a campaign is and how it is checked
//! (`campaign`), the public invite path's rules (`invite`: invite codes,
//! open dates, the click and signup events, the cap on new anonymous
//! visitors), the reward ledger and its reconcile planner (`ledger`), and
//! the numbers an operator reads (`report`: stats, leaderboard, invitees).
//!
//! Who counts is decided by one pure function, `siyu_engine::fission::
//! evaluate` (new to the brand across stitched identities, not the
//! inviter, anti-fraud flags with operator overrides, conversion window,
//! hold period); this module feeds it the campaign's rules and turns its
//! result into rewards. Rewards are reconciled against it, never
//! incrementally: each pass grants the tiers an inviter reached (while
//! stock lasts) and claws back what the invitees who "took the gift and
//! left" no longer support. [`ledger::plan`] decides; the server commits
//! the plan (events through its writer, reward messages through the
//! executor, ledger rows through the store), so the rule runs in a test
//! without HTTP, clock or threads.
//!
//! Everything a campaign keeps lives in settings, under the prefixes
//! below; it is read and written only through `&mut dyn Store`.

mod campaign;
mod invite;
mod ledger;
mod report;

pub use campaign::{
    background, canonical_person, default_poster, list, load, overrides, put_background, rules,
    save, set_override, Campaign, Grant, Reward, RuleText, Tier,
};
pub use invite::{
    campaign_open, claim_scope, click_event, display_name, invite_code, invite_purpose,
    signup_event, VisitorCap, MAX_DEVICE_LEN, MAX_NEW_VISITORS_PER_DAY,
};
pub use ledger::{
    ledger, plan, resolve, reward_event, stock_left, tally, vouched, LedgerRow, LedgerStatus,
    People, Plan, Reconciled, RewardMessage,
};
pub use report::{invitees, leaderboard, stats, InviteeRow, InviteeStatus, LeaderRow, RewardStats};

/// Settings prefix of campaign definitions (`campaign/<id>`).
pub const CAMPAIGN_PREFIX: &str = "campaign/";
/// Settings prefix of the reward ledger (`reward/<campaign>/<inviter>/<tier>`).
pub const REWARD_PREFIX: &str = "reward/";
/// Settings prefix of operator decisions on flagged invitees
/// (`fission_override/<campaign>/<invitee>`: true, false).
pub const OVERRIDE_PREFIX: &str = "fission_override/";
/// Settings prefix of poster backgrounds (`campaign_background/<id>`: PNG as hex).
pub const BACKGROUND_PREFIX: &str = "campaign_background/";

/// Why a fission request cannot be done; each says what to fix. The
/// server maps each variant to its HTTP status in one place.
#[derive(Debug, thiserror::Error)]
pub enum FissionError {
    #[error("no campaign `{campaign}`; GET /v1/campaigns lists them")]
    NoCampaign { campaign: String },
    /// A definition to save breaks these rules (each names its field).
    #[error("{}", faults.join("; "))]
    Invalid { faults: Vec<String> },
    /// A stored definition no longer reads as a campaign.
    #[error("stored campaign `{campaign}` does not read: {error}")]
    StoredUnreadable { campaign: String, error: String },
    /// A stored definition no longer passes the campaign rules.
    #[error("{}", faults.join("; "))]
    StoredInvalid {
        campaign: String,
        faults: Vec<String>,
    },
    #[error("background: {error}")]
    Background { error: String },
    #[error("poster: {error}")]
    Poster { error: String },
    #[error("campaign `{campaign}` has ended")]
    Ended { campaign: String },
    #[error("campaign `{campaign}` is archived: it takes no new invites, clicks, signups or rewards (its reports stay readable); PUT /v1/campaigns/{campaign} restores it")]
    Archived { campaign: String },
    #[error("campaign `{campaign}` has not started yet")]
    NotStarted { campaign: String },
    #[error("no person with identity `{identity}`")]
    NoPerson { identity: String },
    #[error("status `{status}`: use valid, pending or invalid")]
    Status { status: String },
    /// Stored data the rules cannot read (a remembered identity that no
    /// longer parses): the server's fault, not the caller's.
    #[error("{what}")]
    Unreadable { what: String },
    /// A ledger row that cannot be written as JSON.
    #[error("ledger row: {error}")]
    Encode { error: String },
    #[error(transparent)]
    Store(#[from] siyu_store::StoreError),
}
