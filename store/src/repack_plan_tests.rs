//! The grouping's parts: user summaries, the cutter's packs.
