//! LwM2M paths: `/Object`, `/Object/Instance`, `/Object/Instance/Resource` and
//! `/Object/Instance/Resource/ResourceInstance` (LwM2M 1.1 Core §6.1), each id a 16-bit
//! number of which 65535 (MAX_ID) is reserved.

use std::fmt;
use std::str::FromStr;

use crate::error::PathError;

/// An LwM2M path of one to four ids, each in `0..=65534`.
///
/// Ordered parent-before-child (`/3` < `/3/0` < `/3/0/0` < `/3/1`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    /// Unused trailing ids are always 0, so the derived comparisons are by id list.
    ids: [u16; 4],
    len: u8,
}

impl Path {
    /// The largest id a path may carry; 65535 is the reserved MAX_ID.
    pub const MAX_ID: u16 = 65534;

    /// The path of the given ids (1 to 4 of them, each at most [`Path::MAX_ID`]).
    pub fn new(ids: &[u16]) -> Result<Path, PathError> {
        if ids.is_empty() {
            return Err(PathError::Empty);
        }
        if ids.len() > 4 {
            return Err(PathError::TooDeep(ids.len()));
        }
        let mut path = Path {
            ids: [0; 4],
            len: 0,
        };
        for &id in ids {
            path = path.push(id)?;
        }
        Ok(path)
    }

    /// The object path `/object`.
    pub fn object(object: u16) -> Result<Path, PathError> {
        Path::new(&[object])
    }

    /// The resource path `/object/instance/resource`.
    pub fn resource(object: u16, instance: u16, resource: u16) -> Result<Path, PathError> {
        Path::new(&[object, instance, resource])
    }

    /// Appends `id` without the emptiness check (`len` may be 0 while building).
    fn push(mut self, id: u16) -> Result<Path, PathError> {
        if id > Path::MAX_ID {
            return Err(PathError::IdOutOfRange(id.into()));
        }
        let at = usize::from(self.len);
        let Some(slot) = self.ids.get_mut(at) else {
            return Err(PathError::TooDeep(at + 1));
        };
        *slot = id;
        self.len += 1;
        Ok(self)
    }

    /// Parses `/3`, `/3/0`, `/3/0/1` or `/3/0/6/1`; one trailing `/` is tolerated
    /// (`/3/0/` is `/3/0`, the form base names take). Ids are canonical decimals: no sign,
    /// no leading zero.
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PathError::NoLeadingSlash(text.to_owned()));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(PathError::Empty);
        }
        let mut path = Path {
            ids: [0; 4],
            len: 0,
        };
        for (level, segment) in rest.split('/').enumerate() {
            if level >= 4 {
                return Err(PathError::TooDeep(rest.split('/').count()));
            }
            path = path.push(parse_id(segment)?)?;
        }
        Ok(path)
    }

    /// The ids, outermost first.
    pub fn ids(&self) -> &[u16] {
        &self.ids[..usize::from(self.len)]
    }

    /// How many ids the path has (1 = object … 4 = resource instance).
    pub fn depth(&self) -> usize {
        usize::from(self.len)
    }

    /// The object id.
    pub fn object_id(&self) -> u16 {
        self.ids[0]
    }

    /// The object instance id, if the path has one.
    pub fn instance_id(&self) -> Option<u16> {
        self.ids().get(1).copied()
    }

    /// The resource id, if the path has one.
    pub fn resource_id(&self) -> Option<u16> {
        self.ids().get(2).copied()
    }

    /// The resource instance id, if the path has one.
    pub fn resource_instance_id(&self) -> Option<u16> {
        self.ids().get(3).copied()
    }

    /// The innermost id.
    pub fn last_id(&self) -> u16 {
        self.ids[usize::from(self.len) - 1]
    }

    /// The path one level deeper.
    pub fn child(&self, id: u16) -> Result<Path, PathError> {
        self.push(id)
    }

    /// The path one level up, or `None` for an object path.
    pub fn parent(&self) -> Option<Path> {
        if self.len <= 1 {
            return None;
        }
        let mut parent = *self;
        parent.len -= 1;
        parent.ids[usize::from(parent.len)] = 0;
        Some(parent)
    }

    /// Whether `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &Path) -> bool {
        self.ids().starts_with(prefix.ids())
    }

    /// The ids below `base`, or `None` when this path is not under (or equal to) `base`.
    pub fn relative_to(&self, base: &Path) -> Option<&[u16]> {
        self.ids().strip_prefix(base.ids())
    }
}

/// Parses one canonical decimal segment.
fn parse_id(segment: &str) -> Result<u16, PathError> {
    let canonical = !segment.is_empty()
        && segment.len() <= 5
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    if !canonical {
        return Err(PathError::BadSegment(segment.chars().take(16).collect()));
    }
    let value: u32 = segment
        .parse()
        .map_err(|_| PathError::BadSegment(segment.to_owned()))?;
    u16::try_from(value)
        .ok()
        .filter(|id| *id <= Path::MAX_ID)
        .ok_or(PathError::IdOutOfRange(value))
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Path, PathError> {
        Path::parse(text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for id in self.ids() {
            write!(f, "/{id}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_every_depth() {
        for text in [
            "/3",
            "/3/0",
            "/3/0/1",
            "/3/0/6/1",
            "/65534/65534/65534/65534",
        ] {
            let path = Path::parse(text).unwrap();
            assert_eq!(path.to_string(), text);
            assert_eq!(path.depth(), text.matches('/').count());
        }
        let path: Path = "/3/0/6/1".parse().unwrap();
        assert_eq!(path.ids(), &[3, 0, 6, 1]);
        assert_eq!(path.object_id(), 3);
        assert_eq!(path.instance_id(), Some(0));
        assert_eq!(path.resource_id(), Some(6));
        assert_eq!(path.resource_instance_id(), Some(1));
        assert_eq!(path.last_id(), 1);
        assert_eq!(Path::parse("/3").unwrap().instance_id(), None);
    }

    #[test]
    fn a_trailing_slash_is_tolerated_once() {
        assert_eq!(Path::parse("/3/0/").unwrap(), Path::new(&[3, 0]).unwrap());
        assert!(Path::parse("/3/0//").is_err());
        assert!(Path::parse("/3//0").is_err());
    }

    #[test]
    fn malformed_paths_are_refused() {
        assert_eq!(
            Path::parse(""),
            Err(PathError::NoLeadingSlash(String::new()))
        );
        assert_eq!(Path::parse("/"), Err(PathError::Empty));
        assert_eq!(
            Path::parse("3/0"),
            Err(PathError::NoLeadingSlash("3/0".into()))
        );
        assert_eq!(Path::parse("/1/2/3/4/5"), Err(PathError::TooDeep(5)));
        for bad in ["/a", "/-1", "/+1", "/01", "/1.0", "/ 1", "/123456"] {
            assert!(
                matches!(Path::parse(bad), Err(PathError::BadSegment(_))),
                "{bad}"
            );
        }
        assert_eq!(Path::parse("/65535"), Err(PathError::IdOutOfRange(65535)));
        assert_eq!(Path::parse("/3/65536"), Err(PathError::IdOutOfRange(65536)));
        assert_eq!(Path::new(&[]), Err(PathError::Empty));
        assert_eq!(Path::new(&[1, 2, 3, 4, 5]), Err(PathError::TooDeep(5)));
        assert_eq!(Path::new(&[3, 65535]), Err(PathError::IdOutOfRange(65535)));
        let err = Path::parse("/65535").unwrap_err();
        assert!(err.to_string().contains("§6.1"), "{err}");
    }

    #[test]
    fn children_parents_and_prefixes() {
        let instance = Path::new(&[3, 0]).unwrap();
        let resource = instance.child(6).unwrap();
        let item = resource.child(1).unwrap();
        assert_eq!(item.to_string(), "/3/0/6/1");
        assert_eq!(item.child(0), Err(PathError::TooDeep(5)));
        assert_eq!(item.parent(), Some(resource));
        assert_eq!(Path::object(3).unwrap().parent(), None);
        assert!(item.starts_with(&instance));
        assert!(!instance.starts_with(&item));
        assert_eq!(item.relative_to(&instance), Some(&[6u16, 1][..]));
        assert_eq!(instance.relative_to(&item), None);
        assert!(instance < resource && resource < item);
        assert!(item < Path::new(&[3, 1]).unwrap());
    }
}
