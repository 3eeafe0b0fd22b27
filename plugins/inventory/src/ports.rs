//! Parser for the kernel's socket tables (`/proc/net/tcp`, `tcp6`, `udp`, `udp6`): the sockets
//! that wait for peers, with their local address and port. For TCP those in the LISTEN state
//! (`st` `0A`); UDP has no listen, so a UDP socket waits for peers when it is bound and not
//! connected: state `07` (the kernel's TCP_CLOSE, which UDP reuses) with no remote port (a
//! connected client socket has one, and is not a service). The addresses are hex in the
//! kernel's byte order: IPv4 one little-endian 32-bit word, IPv6 four of them. Each socket's
//! inode (the tenth column) is kept: it is how `owners.rs` finds the process that owns it.

use std::net::{Ipv4Addr, Ipv6Addr};

/// LISTEN in `include/net/tcp_states.h`.
const LISTEN: &str = "0A";
/// TCP_CLOSE, the state of an unconnected UDP socket.
const UNCONNECTED: &str = "07";

/// Which table is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// One listening port: its address, and the inodes of its sockets (to find their owning
/// processes, `owners.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: String,
    pub port: u16,
    /// Sorted, without duplicates; empty when the table's line had no inode column.
    pub inodes: Vec<u64>,
}

/// Listening sockets of one table, sorted and without duplicates (one socket per worker
/// with `SO_REUSEPORT` is still one listening port, with each socket's inode). Lines that do
/// not parse are skipped.
pub fn listeners(table: &str, transport: Transport) -> Vec<Listener> {
    let mut sockets: Vec<Listener> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            let waits = match transport {
                Transport::Tcp => *state == LISTEN,
                Transport::Udp => *state == UNCONNECTED && remote.ends_with(":0000"),
            };
            if !waits {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            Some(Listener {
                address: address(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
                // The tenth column; 0 is no socket file (nothing can own it).
                inodes: fields
                    .get(9)
                    .and_then(|i| i.parse::<u64>().ok())
                    .filter(|&i| i != 0)
                    .into_iter()
                    .collect(),
            })
        })
        .collect();
    sockets.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
    let mut out: Vec<Listener> = Vec::with_capacity(sockets.len());
    for socket in sockets {
        match out.last_mut() {
            Some(last) if last.port == socket.port && last.address == socket.address => {
                last.inodes.extend(socket.inodes);
            }
            _ => out.push(socket),
        }
    }
    for listener in &mut out {
        listener.inodes.sort_unstable();
        listener.inodes.dedup();
    }
    out
}

/// A hex address of 8 (IPv4) or 32 (IPv6) digits, each 32-bit word little-endian.
fn address(hex: &str) -> Option<String> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| {
            hex.get(i * 8..i * 8 + 8)
                .and_then(|w| u32::from_str_radix(w, 16).ok())
        })
        .collect::<Option<_>>()?;
    if words.len() * 8 != hex.len() {
        return None;
    }
    match words[..] {
        [w] => Some(Ipv4Addr::from(w.swap_bytes()).to_string()),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            Some(Ipv6Addr::from(bytes).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_decoded_and_the_rest_skipped() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n\
   2: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1\n\
   3: 0F02000A:0016 0202000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 4 1\n\
   4: garbage\n";
        assert_eq!(
            listeners(tcp, Transport::Tcp),
            [
                Listener {
                    address: "0.0.0.0".into(),
                    port: 22,
                    inodes: vec![1],
                },
                Listener {
                    address: "127.0.0.1".into(),
                    port: 631,
                    inodes: vec![2, 3],
                },
            ]
        );
        let tcp6 = "header\n\
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1 1\n\
   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1 1\n";
        assert_eq!(
            listeners(tcp6, Transport::Tcp),
            [
                Listener {
                    address: "::".into(),
                    port: 22,
                    inodes: vec![1],
                },
                Listener {
                    address: "::1".into(),
                    port: 8080,
                    inodes: vec![1],
                },
            ]
        );
    }

    #[test]
    fn a_missing_or_zero_inode_is_no_inode_and_hostile_lines_are_skipped() {
        let tcp = "header\n\
   0: 00000000:0016 00000000:0000 0A 0 0 0 0 0 0\n\
   1: 00000000:0050 00000000:0000 0A 0 0 0 0 0 nope\n\
   2: 00000000:01BB 00000000:0000 0A\n\
   3: 00000000:FFFFF 00000000:0000 0A 0 0 0 0 0 5\n\
   4: 0000000:0016 00000000:0000 0A 0 0 0 0 0 5\n\
   5: 00000000:0016 00000000:0000 0A 0 0 0 0 0 18446744073709551616\n\
   6: \u{0}\u{ffff}:: : 0A\n";
        assert_eq!(
            listeners(tcp, Transport::Tcp),
            [
                Listener {
                    address: "0.0.0.0".into(),
                    port: 22,
                    inodes: vec![]
                },
                Listener {
                    address: "0.0.0.0".into(),
                    port: 80,
                    inodes: vec![]
                },
                Listener {
                    address: "0.0.0.0".into(),
                    port: 443,
                    inodes: vec![]
                },
            ],
            "a port past 16 bits and a 7-digit address are skipped; an inode past 64 bits is none"
        );
    }

    #[test]
    fn bound_unconnected_udp_sockets_wait_for_peers_and_connected_ones_do_not() {
        let udp = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  10: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   102        0 11 2 0 0
  11: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12 2 0 0
  12: 0F02000A:9C40 0202000A:0035 01 00000000:00000000 00:00000000 00000000  1000        0 13 2 0 0
  13: 0F02000A:9C41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 14 2 0 0
";
        assert_eq!(
            listeners(udp, Transport::Udp),
            [
                Listener {
                    address: "127.0.0.53".into(),
                    port: 53,
                    inodes: vec![11],
                },
                Listener {
                    address: "0.0.0.0".into(),
                    port: 68,
                    inodes: vec![12],
                },
            ],
            "the resolver and the DHCP client; not the connected socket to 10.0.2.2:53"
        );
        // The TCP reading of a UDP table finds only what is LISTEN (nothing real).
        assert_eq!(listeners(udp, Transport::Tcp).len(), 1);
    }
}
