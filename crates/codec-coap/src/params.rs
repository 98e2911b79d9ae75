//! Transmission parameters (RFC 7252 §4.8) and the times derived from them (§4.8.2).

/// The message-layer parameters of RFC 7252 §4.8, defaults from its table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// ACK_TIMEOUT in milliseconds; default 2000.
    pub ack_timeout_ms: u64,
    /// ACK_RANDOM_FACTOR, at least 1.0; default 1.5.
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT; default 4.
    pub max_retransmit: u32,
    /// NSTART, outstanding interactions per peer; default 1.
    pub nstart: u32,
    /// DEFAULT_LEISURE in milliseconds (multicast responses); default 5000.
    pub default_leisure_ms: u64,
    /// PROBING_RATE in bytes per second; default 1.
    pub probing_rate: u32,
    /// MAX_LATENCY in milliseconds; default 100 000.
    pub max_latency_ms: u64,
    /// PROCESSING_DELAY in milliseconds; default ACK_TIMEOUT (2000).
    pub processing_delay_ms: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            ack_timeout_ms: 2_000,
            ack_random_factor: 1.5,
            max_retransmit: 4,
            nstart: 1,
            default_leisure_ms: 5_000,
            probing_rate: 1,
            max_latency_ms: 100_000,
            processing_delay_ms: 2_000,
        }
    }
}

impl Params {
    /// ACK_RANDOM_FACTOR, with values below 1.0 or NaN read as 1.0.
    fn factor(&self) -> f64 {
        self.ack_random_factor.max(1.0)
    }

    /// `ms × ACK_RANDOM_FACTOR`, saturating.
    fn scaled(&self, ms: u64) -> u64 {
        (ms as f64 * self.factor()) as u64
    }

    /// 2^exp − 1, saturating.
    fn pow2_minus_one(exp: u32) -> u64 {
        1u64.checked_shl(exp).map_or(u64::MAX, |p| p - 1)
    }

    /// The longest first retransmission timeout: ACK_TIMEOUT × ACK_RANDOM_FACTOR (3 s).
    pub fn max_initial_timeout_ms(&self) -> u64 {
        self.scaled(self.ack_timeout_ms)
    }

    /// The first retransmission timeout for a random `draw`: uniform over
    /// [ACK_TIMEOUT, ACK_TIMEOUT × ACK_RANDOM_FACTOR] (RFC 7252 §4.2).
    pub fn initial_timeout_ms(&self, draw: u64) -> u64 {
        let spread = self
            .max_initial_timeout_ms()
            .saturating_sub(self.ack_timeout_ms);
        self.ack_timeout_ms
            .saturating_add(draw % spread.saturating_add(1))
    }

    /// MAX_TRANSMIT_SPAN: first transmission to last retransmission (45 s, §4.8.2).
    pub fn max_transmit_span_ms(&self) -> u64 {
        self.scaled(
            self.ack_timeout_ms
                .saturating_mul(Params::pow2_minus_one(self.max_retransmit)),
        )
    }

    /// MAX_TRANSMIT_WAIT: first transmission to giving up (93 s, §4.8.2).
    pub fn max_transmit_wait_ms(&self) -> u64 {
        self.scaled(self.ack_timeout_ms.saturating_mul(Params::pow2_minus_one(
            self.max_retransmit.saturating_add(1),
        )))
    }

    /// EXCHANGE_LIFETIME: how long a CON's Message ID is remembered (247 s, §4.8.2).
    pub fn exchange_lifetime_ms(&self) -> u64 {
        self.max_transmit_span_ms()
            .saturating_add(self.max_latency_ms.saturating_mul(2))
            .saturating_add(self.processing_delay_ms)
    }

    /// NON_LIFETIME: how long a NON's Message ID is remembered (145 s, §4.8.2).
    pub fn non_lifetime_ms(&self) -> u64 {
        self.max_transmit_span_ms()
            .saturating_add(self.max_latency_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_times_match_rfc_7252_section_4_8_2() {
        let p = Params::default();
        assert_eq!(p.max_transmit_span_ms(), 45_000);
        assert_eq!(p.max_transmit_wait_ms(), 93_000);
        assert_eq!(p.exchange_lifetime_ms(), 247_000);
        assert_eq!(p.non_lifetime_ms(), 145_000);
        assert_eq!(p.max_initial_timeout_ms(), 3_000);
    }

    #[test]
    fn the_first_timeout_stays_within_its_interval() {
        let p = Params::default();
        assert_eq!(p.initial_timeout_ms(0), 2_000);
        assert_eq!(p.initial_timeout_ms(1_000), 3_000);
        assert_eq!(p.initial_timeout_ms(1_001), 2_000);
        assert!((0..10_000).all(|d| (2_000..=3_000).contains(&p.initial_timeout_ms(d * 7919))));
    }

    #[test]
    fn hostile_parameters_saturate_instead_of_overflowing() {
        let p = Params {
            ack_timeout_ms: u64::MAX,
            ack_random_factor: f64::NAN,
            max_retransmit: u32::MAX,
            ..Params::default()
        };
        assert_eq!(p.max_transmit_wait_ms(), u64::MAX);
        assert_eq!(p.exchange_lifetime_ms(), u64::MAX);
        assert_eq!(p.initial_timeout_ms(12345), u64::MAX);
    }
}
