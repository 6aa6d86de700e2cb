//! What the fuzz targets share.

use lubdub::protocol::DEFAULT_MAX_FRAME;

/// The frame limit a fuzz input's first byte picks: every small limit
/// (below a header included), kilobyte steps, the default, and none.
pub fn max_frame(limit: u8) -> usize {
    match limit {
        0..=127 => usize::from(limit),
        128..=191 => usize::from(limit - 127) * 1024,
        192..=253 => DEFAULT_MAX_FRAME,
        _ => usize::MAX,
    }
}
