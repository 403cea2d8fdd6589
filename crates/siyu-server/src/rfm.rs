//! The workspace's RFM thresholds (what `rfm_layer` and
//! `GET /v1/analytics/rfm-layers` read): the `rfm/thresholds` setting when
//! an operator set one (`PUT /v1/settings/rfm`), else the data's medians
//! among buyers (`siyu_engine::rfm::median_thresholds`).
//!
//! The engine holds one fixed set of thresholds and keeps every segment
//! exact against it (timers for recency, a full re-evaluation when the
//! thresholds change). Medians move with every purchase, so they cannot
//! be followed event by event; instead the writer pins them: at start, as
//! soon as the first buyers exist, and again every
//! [`MEDIAN_REFRESH_SECS`] on its idle tick. Each re-pin is one threshold
//! change (entries and exits published like any other). Analytics report
//! the pinned thresholds and their source, so the layer counts and the
//! segments always agree.

use siyu_engine::rfm::{median_thresholds, RfmBasis, RfmSource, RfmThresholds};
use siyu_engine::Engine;
use siyu_store::Store;

/// The settings key of the workspace's thresholds.
pub const SETTING: &str = "rfm/thresholds";

/// How often medians (no setting) are computed again and re-pinned.
pub const MEDIAN_REFRESH_SECS: i64 = 3600;

/// The stored thresholds, if any. A row that does not read back as valid
/// thresholds (an older build, a hand edit) is logged and ignored: the
/// medians apply, and a valid `PUT` replaces it.
pub fn stored(store: &mut dyn Store) -> siyu_store::Result<Option<RfmThresholds>> {
    let Some(v) = store.get_setting(SETTING)? else {
        return Ok(None);
    };
    match serde_json::from_value::<RfmThresholds>(v) {
        Ok(t) if t.validate().is_ok() => Ok(Some(t)),
        Ok(t) => {
            tracing::warn!(?t, "stored RFM thresholds out of range; using the medians");
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "stored RFM thresholds unreadable; using the medians");
            Ok(None)
        }
    }
}

/// The thresholds to pin: the setting, else the medians at `now` (none
/// while nobody has purchased).
pub fn basis(setting: Option<RfmThresholds>, engine: &Engine, now: i64) -> Option<RfmBasis> {
    match setting {
        Some(thresholds) => Some(RfmBasis {
            thresholds,
            source: RfmSource::Setting,
        }),
        None => median_thresholds(engine, now).map(|thresholds| RfmBasis {
            thresholds,
            source: RfmSource::Median { at: now },
        }),
    }
}

/// Whether the engine's pinned basis already follows the stored setting
/// (`None`: no setting), so following the settings changes nothing: the
/// setting itself is pinned, or the medians are (their hourly refresh is
/// [`medians_due`]'s, not a settings check's: re-pinning them on every
/// periodic full check cost a pass over every person, ~60 ms at 1M, and
/// published threshold changes nobody made).
pub fn follows(setting: Option<&RfmThresholds>, pinned: Option<&RfmBasis>) -> bool {
    match (setting, pinned) {
        (Some(t), Some(b)) => b.source == RfmSource::Setting && b.thresholds == *t,
        (Some(_), None) => false,
        // Not pinned yet: nobody has purchased; the idle tick pins them.
        (None, None) => true,
        (None, Some(b)) => matches!(b.source, RfmSource::Median { .. }),
    }
}

/// Whether the writer should compute the medians again at `now`: there is
/// no setting and either nothing is pinned (and events arrived since the
/// last try, `checked_at_events`) or the pinned medians are an hour old.
pub fn medians_due(engine: &Engine, now: i64, checked_at_events: u64) -> bool {
    match engine.rfm_basis() {
        None => engine.events_applied() != checked_at_events,
        Some(RfmBasis {
            source: RfmSource::Median { at },
            ..
        }) => now - at >= MEDIAN_REFRESH_SECS,
        Some(_) => false,
    }
}
