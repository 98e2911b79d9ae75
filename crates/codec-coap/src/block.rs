//! Block-wise transfer (RFC 7959): the Block1/Block2 option value, a sans-IO Block1
//! reassembler for request bodies, and a Block2 slicer for response bodies.

use bytes::{Bytes, BytesMut};

use crate::code::Code;

/// Largest block number: NUM has 20 bits (RFC 7959 §2.2).
pub const MAX_NUM: u32 = (1 << 20) - 1;
/// Largest SZX; 7 is reserved (RFC 7959 §2.2).
pub const MAX_SZX: u8 = 6;

/// A Block1 or Block2 option value (RFC 7959 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    /// The block number, below 2^20.
    pub num: u32,
    /// The M bit: more blocks follow.
    pub more: bool,
    /// The size exponent: blocks of 2^(szx+4) octets, 0..=6.
    pub szx: u8,
}

/// Why a block option or block-wise exchange is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// An option value longer than 3 octets.
    #[error("block option of {0} octets exceeds 3 [RFC 7959 §2.2]")]
    ValueTooLong(usize),
    /// SZX 7, reserved.
    #[error("block SZX 7 is reserved [RFC 7959 §2.2]")]
    ReservedSzx,
    /// A block number of 2^20 or more.
    #[error("block number {0} does not fit 20 bits [RFC 7959 §2.2]")]
    NumTooLarge(u32),
    /// A block that does not continue the body received so far.
    #[error("block {num} at offset {offset} does not continue the {received} octets received [RFC 7959 §2.5: 4.08 Request Entity Incomplete]")]
    Incomplete {
        /// The block number received.
        num: u32,
        /// Where that block starts.
        offset: u64,
        /// Octets received so far.
        received: usize,
    },
    /// The body would exceed the caller's limit.
    #[error("body of at least {size} octets exceeds the limit of {limit} [RFC 7959 §2.9.3: 4.13 Request Entity Too Large]")]
    TooLarge {
        /// The size reached or announced.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// A block with the M bit set whose payload is not exactly the block size.
    #[error("block with more=1 carries {len} octets instead of {size} [RFC 7959 §2.3]")]
    WrongSize {
        /// Octets in the payload.
        len: usize,
        /// The block size.
        size: usize,
    },
    /// A Block2 request for a block past the end of the representation.
    #[error("block {num} starts past the {len}-octet representation [RFC 7959 §2.4]")]
    OutOfRange {
        /// The block number requested.
        num: u32,
        /// Size of the representation.
        len: usize,
    },
}

impl BlockError {
    /// The response code a server answers the request with.
    pub fn response_code(&self) -> Code {
        match self {
            BlockError::Incomplete { .. } => Code::REQUEST_ENTITY_INCOMPLETE,
            BlockError::TooLarge { .. } => Code::REQUEST_ENTITY_TOO_LARGE,
            // A malformed option is handled like an unrecognized one (RFC 7252 §5.4.3).
            BlockError::ValueTooLong(_)
            | BlockError::ReservedSzx
            | BlockError::NumTooLarge(_)
            | BlockError::OutOfRange { .. } => Code::BAD_OPTION,
            BlockError::WrongSize { .. } => Code::BAD_REQUEST,
        }
    }
}

impl Block {
    /// A block, checking `num` and `szx`.
    pub fn new(num: u32, more: bool, szx: u8) -> Result<Block, BlockError> {
        let block = Block { num, more, szx };
        block.check()?;
        Ok(block)
    }

    /// The block size for `szx` (RFC 7959 §2.2), defined for 0..=7.
    pub const fn size_of(szx: u8) -> usize {
        1 << ((szx & 0x07) + 4)
    }

    /// The largest SZX whose block size is at most `size` (at least 0, at most 6).
    pub fn szx_for(size: usize) -> u8 {
        (0..=MAX_SZX)
            .rev()
            .find(|szx| Block::size_of(*szx) <= size)
            .unwrap_or(0)
    }

    /// The block size, 2^(szx+4) octets.
    pub const fn size(&self) -> usize {
        Block::size_of(self.szx)
    }

    /// Where this block starts in the body: num × size.
    pub const fn offset(&self) -> u64 {
        self.num as u64 * self.size() as u64
    }

    /// Decodes an option value (a `uint` of 0-3 octets, RFC 7959 §2.2).
    pub fn decode(value: &[u8]) -> Result<Block, BlockError> {
        if value.len() > 3 {
            return Err(BlockError::ValueTooLong(value.len()));
        }
        let raw = value.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let szx = (raw & 0x07) as u8;
        if szx > MAX_SZX {
            return Err(BlockError::ReservedSzx);
        }
        Ok(Block {
            num: raw >> 4,
            more: raw & 0x08 != 0,
            szx,
        })
    }

    /// Encodes the option value in the fewest octets.
    pub fn encode(&self) -> Result<Bytes, BlockError> {
        self.check()?;
        let raw = (self.num << 4) | (u32::from(self.more) << 3) | u32::from(self.szx);
        Ok(crate::option::encode_uint(raw))
    }

    /// Checks the ranges of `num` and `szx`.
    fn check(&self) -> Result<(), BlockError> {
        if self.szx > MAX_SZX {
            return Err(BlockError::ReservedSzx);
        }
        if self.num > MAX_NUM {
            return Err(BlockError::NumTooLarge(self.num));
        }
        Ok(())
    }
}

/// What a Block1 block did to the body being reassembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block1Progress {
    /// More blocks are due: answer 2.31 Continue echoing this Block1 (RFC 7959 §2.3).
    Continue(Block),
    /// The last block arrived: the whole body.
    Complete(Bytes),
}

/// Reassembles a request body sent in Block1 blocks (RFC 7959 §2.5), for one request
/// (the caller keys it by peer and request, e.g. URI and Token). Bounded: the body never
/// grows past the limit given to [`Block1Assembler::new`].
#[derive(Debug, Clone)]
pub struct Block1Assembler {
    limit: usize,
    body: BytesMut,
    in_progress: bool,
}

impl Block1Assembler {
    /// An assembler accepting bodies of at most `limit` octets.
    pub fn new(limit: usize) -> Block1Assembler {
        Block1Assembler {
            limit,
            body: BytesMut::new(),
            in_progress: false,
        }
    }

    /// The body limit, to send as Size1 with a 4.13 (RFC 7959 §2.9.3, §4).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether a body has started and not completed.
    pub fn in_progress(&self) -> bool {
        self.in_progress
    }

    /// Octets received so far.
    pub fn received(&self) -> usize {
        self.body.len()
    }

    /// Checks a Size1 announcement of the whole body's size against the limit (RFC 7959 §4).
    pub fn check_size1(&self, size1: u32) -> Result<(), BlockError> {
        if u64::from(size1) > self.limit as u64 {
            return Err(BlockError::TooLarge {
                size: u64::from(size1),
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Adds one block. Block 0 starts a new body; any other block must start where the
    /// body received so far ends, or it is refused with 4.08 (and the body dropped). A
    /// body past the limit is refused with 4.13 (and dropped).
    pub fn push(&mut self, block: Block, payload: &[u8]) -> Result<Block1Progress, BlockError> {
        let result = self.accept(block, payload);
        if !matches!(result, Ok(Block1Progress::Continue(_))) {
            self.reset();
        }
        result
    }

    /// Drops the body received so far.
    pub fn reset(&mut self) {
        self.body = BytesMut::new();
        self.in_progress = false;
    }

    /// [`Block1Assembler::push`] without the reset on completion or error.
    fn accept(&mut self, block: Block, payload: &[u8]) -> Result<Block1Progress, BlockError> {
        block.check()?;
        if block.num == 0 {
            self.body.clear();
            self.in_progress = true;
        }
        let offset = block.offset();
        if !self.in_progress || offset != self.body.len() as u64 {
            return Err(BlockError::Incomplete {
                num: block.num,
                offset,
                received: self.body.len(),
            });
        }
        if block.more && payload.len() != block.size() {
            return Err(BlockError::WrongSize {
                len: payload.len(),
                size: block.size(),
            });
        }
        let total = self.body.len() as u64 + payload.len() as u64;
        if total > self.limit as u64 {
            return Err(BlockError::TooLarge {
                size: total,
                limit: self.limit,
            });
        }
        self.body.extend_from_slice(payload);
        if block.more {
            Ok(Block1Progress::Continue(block))
        } else {
            Ok(Block1Progress::Complete(
                std::mem::take(&mut self.body).freeze(),
            ))
        }
    }
}

/// The block of `body` that a Block2 option `requested` asks for (RFC 7959 §2.4), with the
/// Block2 value to send back (same number and size, M set if more follows). Block 0 of an
/// empty body is the empty slice; any block starting at or past the end of a non-empty
/// body is out of range.
pub fn block2_slice(body: &Bytes, requested: Block) -> Result<(Block, Bytes), BlockError> {
    requested.check()?;
    let offset = requested.offset();
    let len = body.len() as u64;
    if offset >= len && !(offset == 0 && len == 0) {
        return Err(BlockError::OutOfRange {
            num: requested.num,
            len: body.len(),
        });
    }
    let end = (offset + requested.size() as u64).min(len);
    let block = Block {
        more: end < len,
        ..requested
    };
    Ok((block, body.slice(offset as usize..end as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(num: u32, more: bool, szx: u8) -> Block {
        Block { num, more, szx }
    }

    #[test]
    fn option_values_decode_and_encode_minimally() {
        assert_eq!(Block::decode(&[]), Ok(block(0, false, 0)));
        assert_eq!(Block::decode(&[0x0E]), Ok(block(0, true, 6)));
        assert_eq!(Block::decode(&[0x01, 0x2A]), Ok(block(18, true, 2)));
        assert_eq!(block(0, false, 0).encode(), Ok(Bytes::new()));
        assert_eq!(
            block(18, true, 2).encode(),
            Ok(Bytes::from_static(&[0x01, 0x2A]))
        );
        let last = block(MAX_NUM, true, 6);
        assert_eq!(last.encode().map(|v| v.len()), Ok(3));
        assert_eq!(last.encode().and_then(|v| Block::decode(&v)), Ok(last));
    }

    #[test]
    fn reserved_szx_long_values_and_large_numbers_are_refused() {
        assert_eq!(Block::decode(&[0x07]), Err(BlockError::ReservedSzx));
        assert_eq!(
            Block::decode(&[0, 0, 0, 0]),
            Err(BlockError::ValueTooLong(4))
        );
        assert_eq!(
            Block::new(1 << 20, false, 0),
            Err(BlockError::NumTooLarge(1 << 20))
        );
        assert_eq!(Block::new(0, false, 7), Err(BlockError::ReservedSzx));
        assert_eq!(BlockError::ReservedSzx.response_code(), Code::BAD_OPTION);
    }

    #[test]
    fn sizes_are_powers_of_two_from_16_to_1024() {
        assert_eq!(block(0, false, 0).size(), 16);
        assert_eq!(block(0, false, 6).size(), 1024);
        assert_eq!(block(3, false, 2).offset(), 192);
        assert_eq!(Block::szx_for(1024), 6);
        assert_eq!(Block::szx_for(100), 2);
        assert_eq!(Block::szx_for(5000), 6);
        assert_eq!(Block::szx_for(1), 0);
    }

    #[test]
    fn block1_reassembles_in_order_blocks() {
        let mut asm = Block1Assembler::new(100);
        let progress = asm.push(block(0, true, 0), &[1; 16]);
        assert_eq!(progress, Ok(Block1Progress::Continue(block(0, true, 0))));
        assert!(asm.in_progress());
        assert!(matches!(
            asm.push(block(1, true, 0), &[2; 16]),
            Ok(Block1Progress::Continue(_))
        ));
        let done = asm.push(block(2, false, 0), &[3; 5]);
        let Ok(Block1Progress::Complete(body)) = done else {
            panic!("expected a complete body, got {done:?}");
        };
        assert_eq!(body.len(), 37);
        assert_eq!((body[0], body[16], body[36]), (1, 2, 3));
        assert!(!asm.in_progress());
    }

    #[test]
    fn block1_accepts_a_smaller_size_at_the_right_offset() {
        let mut asm = Block1Assembler::new(1000);
        assert!(asm.push(block(0, true, 2), &[0; 64]).is_ok());
        // 64 octets = block 4 of size 16 (RFC 7959 §2.3: a client may switch to smaller blocks).
        assert!(
            matches!(asm.push(block(4, false, 0), &[1; 3]), Ok(Block1Progress::Complete(b)) if b.len() == 67)
        );
    }

    #[test]
    fn block1_out_of_order_is_request_entity_incomplete() {
        let mut asm = Block1Assembler::new(1000);
        let err = asm.push(block(1, true, 0), &[0; 16]).unwrap_err();
        assert_eq!(err.response_code(), Code::REQUEST_ENTITY_INCOMPLETE);
        assert!(asm.push(block(0, true, 0), &[0; 16]).is_ok());
        let err = asm.push(block(2, true, 0), &[0; 16]).unwrap_err();
        assert_eq!(
            err,
            BlockError::Incomplete {
                num: 2,
                offset: 32,
                received: 16
            }
        );
        assert!(!asm.in_progress(), "an error drops the body");
    }

    #[test]
    fn block1_past_the_limit_is_request_entity_too_large() {
        let mut asm = Block1Assembler::new(40);
        assert!(asm.push(block(0, true, 0), &[0; 16]).is_ok());
        assert!(asm.push(block(1, true, 0), &[0; 16]).is_ok());
        let err = asm.push(block(2, true, 0), &[0; 16]).unwrap_err();
        assert_eq!(err.response_code(), Code::REQUEST_ENTITY_TOO_LARGE);
        assert_eq!(asm.received(), 0);
        assert!(asm.check_size1(41).is_err() && asm.check_size1(40).is_ok());
    }

    #[test]
    fn block1_with_more_set_must_fill_the_block() {
        let mut asm = Block1Assembler::new(1000);
        let err = asm.push(block(0, true, 0), &[0; 15]).unwrap_err();
        assert_eq!(err, BlockError::WrongSize { len: 15, size: 16 });
        assert_eq!(err.response_code(), Code::BAD_REQUEST);
    }

    #[test]
    fn block2_slices_the_body_and_sets_more() {
        let body = Bytes::from((0..40u8).collect::<Vec<_>>());
        let (b, slice) = block2_slice(&body, block(0, false, 0)).unwrap();
        assert_eq!((b, slice.len(), slice[0]), (block(0, true, 0), 16, 0));
        let (b, slice) = block2_slice(&body, block(2, false, 0)).unwrap();
        assert_eq!((b, &slice[..]), (block(2, false, 0), &body[32..]));
        assert_eq!(
            block2_slice(&body, block(3, false, 0)),
            Err(BlockError::OutOfRange { num: 3, len: 40 })
        );
        let (b, slice) = block2_slice(&Bytes::new(), block(0, false, 6)).unwrap();
        assert_eq!((b.more, slice.len()), (false, 0));
        let exact = Bytes::from(vec![0; 32]);
        assert_eq!(
            block2_slice(&exact, block(1, false, 0)).map(|(b, _)| b.more),
            Ok(false)
        );
    }
}
