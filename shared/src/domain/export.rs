//! Where a request's export lies in the export bucket: one `exports/<id>/export.zip`, or, for an
//! export too big for one invocation to write, numbered parts (`export-part-01-of-03.zip`, …)
//! beside the plan that made them (`plan.json`). Everything of it lies under one prefix, so an
//! erasure or the bucket's lifecycle removes it whole.

use super::{RequestId, RequestRecord};

/// The folder of a request's export.
pub fn export_prefix(id: RequestId) -> String {
    format!("exports/{id}/")
}

/// The object of the whole export (`None`) or of one of its parts.
pub fn export_key(id: RequestId, part: Option<PartOf>) -> String {
    match part {
        None => format!("{}export.zip", export_prefix(id)),
        Some(part) => format!("{}{}", export_prefix(id), part.file_name()),
    }
}

/// Which recordings go in which part: written once by the job that splits the export, read by
/// every part's job, so a retry builds the same parts whatever the sources hold by then.
pub fn export_plan_key(id: RequestId) -> String {
    format!("{}plan.json", export_prefix(id))
}

/// One part of an export in parts: its number, from 1, and how many there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartOf {
    number: u32,
    of: u32,
}

impl PartOf {
    /// `None` unless `number` is one of the `of` parts.
    pub fn new(number: u32, of: u32) -> Option<PartOf> {
        (1..=of).contains(&number).then_some(PartOf { number, of })
    }

    pub fn number(self) -> u32 {
        self.number
    }

    pub fn of(self) -> u32 {
        self.of
    }

    /// `export-part-01-of-03.zip`: zero-padded, so the parts sort in order in a folder.
    pub fn file_name(self) -> String {
        let width = self.of.to_string().len().max(2);
        format!("export-part-{:0width$}-of-{:0width$}.zip", self.number, self.of)
    }
}

/// A part number the export does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the export has no such part")]
pub struct NoSuchPart;

impl RequestRecord {
    /// The object a download link asks for: without a part number the whole export, or the first
    /// part of one in parts; with one, that part (an export in one piece is its own part 1).
    pub fn export_part(&self, asked: Option<u32>) -> Result<Option<PartOf>, NoSuchPart> {
        match (self.export_parts, asked) {
            (None, None | Some(1)) => Ok(None),
            (None, Some(_)) => Err(NoSuchPart),
            (Some(of), asked) => PartOf::new(asked.unwrap_or(1), of).map(Some).ok_or(NoSuchPart),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_so_they_sort_in_order() {
        let id = RequestId::parse("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        assert_eq!(export_key(id, None), "exports/0f8fad5b-d9cb-469f-a165-70867728950e/export.zip");
        let part = PartOf::new(2, 3).unwrap();
        assert_eq!(
            export_key(id, Some(part)),
            "exports/0f8fad5b-d9cb-469f-a165-70867728950e/export-part-02-of-03.zip"
        );
        assert_eq!(PartOf::new(7, 120).unwrap().file_name(), "export-part-007-of-120.zip");
        assert!(export_plan_key(id).starts_with(&export_prefix(id)), "the plan goes with the export");
        assert_eq!(PartOf::new(0, 3), None);
        assert_eq!(PartOf::new(4, 3), None);
    }

    fn record(export_parts: Option<u32>) -> RequestRecord {
        let at = chrono::DateTime::from_timestamp(1_795_860_000, 0).unwrap();
        let day = at.date_naive();
        let deadlines = super::super::Deadlines { received_on: day, due_on: day, acknowledge_by: None };
        let received = RequestRecord::received(
            RequestId::generate(),
            super::super::RequestKind::Access,
            super::super::Region::parse("NL").unwrap(),
            super::super::Language::Nl,
            super::super::EmailAddress::parse("a@example.com").unwrap(),
            at,
            deadlines,
        );
        RequestRecord { export_parts, ..received }
    }

    #[test]
    fn a_download_asks_for_the_whole_export_or_one_part_it_has() {
        let whole = record(None);
        assert_eq!(whole.export_part(None), Ok(None));
        assert_eq!(whole.export_part(Some(1)), Ok(None), "one piece is its own part 1");
        assert_eq!(whole.export_part(Some(2)), Err(NoSuchPart));
        let three = record(Some(3));
        assert_eq!(three.export_part(None), Ok(PartOf::new(1, 3)), "no number: the first part");
        assert_eq!(three.export_part(Some(3)), Ok(PartOf::new(3, 3)));
        for bad in [0, 4, u32::MAX] {
            assert_eq!(three.export_part(Some(bad)), Err(NoSuchPart), "{bad}");
        }
    }
}
