//! Packet limits: every statement the copy sends, and every row it reads, must fit in the
//! servers' `max_allowed_packet`. A row that cannot is found before the first write, from the
//! restored copy, and stops the run with what to change; the copy's chunks are held to half
//! of the smaller limit.

use super::*;

/// Room for what surrounds a row's values in a statement or packet: the statement text, the
/// column lengths, the protocol's headers.
const PACKET_OVERHEAD: u64 = 4 << 10;

/// `1.0 GiB`, `12.0 MiB`, `640 KiB`, `512 bytes`.
pub(super) fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The chunk byte budget that fits a packet limit: `--chunk-bytes`, or half the limit when that
/// is smaller (a chunk's statement carries its rows once, plus a little).
pub(super) fn budget_within(chunk_bytes: usize, limit: u64) -> usize {
    chunk_bytes.min(usize::try_from(limit / 2).unwrap_or(usize::MAX)).max(1)
}

impl Machine<'_> {
    /// Reads both servers' `max_allowed_packet`, and, when the table's column types allow a row
    /// past the smaller one, finds its widest restored row: one too large to carry stops the run
    /// here, before anything is written. Returns the chunk byte budget the copy keeps.
    pub(super) async fn check_packets(
        &mut self,
        source: &Source,
        endpoint: &Endpoint,
        schema: &TableSchema,
    ) -> Result<usize> {
        let plan = self.tplan();
        // The copy's own pair of sessions, opened here if they are not yet: over a slow link
        // each session opened costs several round trips.
        if self.restored_session.is_none() || self.production_session.is_none() {
            self.connect_pair(source, endpoint).await?;
        }
        let (Some(restored), Some(production)) = (self.restored_session.as_mut(), self.production_session.as_mut())
        else {
            return Err(Error::Interrupted);
        };
        let (restored_limit, production_limit) =
            tokio::try_join!(restored.max_allowed_packet(), production.max_allowed_packet())?;
        let (limit, side) = match restored_limit < production_limit {
            true => (restored_limit, Side::Restored),
            false => (production_limit, Side::Production),
        };
        let budget = budget_within(plan.chunk_bytes, limit);
        if budget < plan.chunk_bytes {
            self.deps.ui.note(&format!(
                "chunks hold at most {} of rows: half of max_allowed_packet on {side} ({})",
                size_text(budget as u64),
                size_text(limit)
            ));
        }
        // The checksums hash each row as its values with their lengths, in one string that
        // must fit the limit as well: a little more than the row.
        let room = limit.saturating_sub(PACKET_OVERHEAD + 24 * schema.columns.len() as u64);
        if schema.widest_possible_row() <= room {
            return Ok(budget);
        }
        self.deps.ui.note(&format!(
            "Finding the widest row of `{}` on the restored copy (its columns can hold rows past max_allowed_packet, {})...",
            plan.table,
            size_text(limit)
        ));
        let widest = restored
            .widest_row(plan.restored_table(), schema, plan.where_predicate.as_deref())
            .await?;
        let Some((key, bytes)) = widest else {
            return Ok(budget);
        };
        if bytes <= room {
            return Ok(budget);
        }
        let source_group = source.instance.parameter_group.clone();
        let group = match side {
            Side::Production => match &source_group {
                Some(g) => format!("production's parameter group `{g}`"),
                None => "production's parameter group".to_string(),
            },
            Side::Restored => match plan.parameter_group.clone().or(source_group) {
                Some(g) => format!("the restored copy's parameter group `{g}` (it reads the rows)"),
                None => "the restored copy's parameter group (it reads the rows)".to_string(),
            },
        };
        let needed = (bytes + limit - room).div_ceil(1 << 20) << 20;
        let key: Vec<&crate::ports::Value> = key.iter().collect();
        Err(Error::RowTooLarge(Box::new(crate::error::OversizeRow {
            table: plan.table.to_string(),
            key: match key.is_empty() {
                true => "(none: the table has no primary key)".to_string(),
                false => crate::rowcodec::display_key(&key),
            },
            size: size_text(bytes),
            side,
            limit: size_text(limit),
            needed: size_text(needed),
            group,
            written: match self.state.copy.chunks {
                0 => "nothing was written".to_string(),
                _ => "nothing more was written (the chunks before it are in place)".to_string(),
            },
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_fits_in_half_the_smaller_packet_limit() {
        assert_eq!(budget_within(8 << 20, 64 << 20), 8 << 20);
        assert_eq!(budget_within(8 << 20, 4 << 20), 2 << 20);
        assert_eq!(budget_within(8 << 20, 0), 1);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(1 << 30), "1.0 GiB");
        assert_eq!(size_text(12 << 20), "12.0 MiB");
        assert_eq!(size_text(640 << 10), "640 KiB");
        assert_eq!(size_text(512), "512 bytes");
    }
}
