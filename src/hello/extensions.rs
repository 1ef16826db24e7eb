//! Decodes the bodies of the extensions we understand (RFC 8446 §4.2 and the
//! RFCs/drafts named per case). A body that does not parse becomes
//! [`ExtensionData::Malformed`] rather than failing the whole hello: a broken
//! extension is exactly the kind of evidence a diagnosis needs.

use super::error::Malformed;
use super::model::{EchInfo, ExtensionData, KeyShareEntry, Protocol, ServerName};
use super::reader::Reader;
use super::wire::{ExtensionType, NamedGroup, ProtocolVersion, SignatureScheme};

pub(crate) fn decode(kind: ExtensionType, data: &[u8]) -> ExtensionData {
    decode_known(kind, data).unwrap_or_else(|err| ExtensionData::Malformed {
        reason: err.to_string(),
    })
}

fn decode_known(kind: ExtensionType, data: &[u8]) -> Result<ExtensionData, Malformed> {
    let mut r = Reader::new(data);
    let decoded = match kind {
        // RFC 6066 §3. An empty body is legal (it is what servers echo).
        ExtensionType::SERVER_NAME if data.is_empty() => {
            ExtensionData::ServerName { names: vec![] }
        }
        ExtensionType::SERVER_NAME => {
            let mut list = r.vec16("server_name list")?;
            let mut names = Vec::new();
            while !list.is_empty() {
                let name_type = list.u8("server_name type")?;
                let name = list.vec16("server_name host_name")?.rest();
                names.push(ServerName {
                    name_type,
                    name: String::from_utf8_lossy(name).into_owned(),
                });
            }
            ExtensionData::ServerName { names }
        }
        // RFC 7301 §3.1
        ExtensionType::ALPN => ExtensionData::Alpn {
            protocols: protocol_list(&mut r, "alpn protocol_name_list")?,
        },
        // draft-vvv-tls-alps: same wire shape as ALPN.
        ExtensionType::APPLICATION_SETTINGS | ExtensionType::APPLICATION_SETTINGS_OLD => {
            ExtensionData::ApplicationSettings {
                protocols: protocol_list(&mut r, "application_settings supported_protocols")?,
            }
        }
        ExtensionType::SUPPORTED_GROUPS => ExtensionData::SupportedGroups {
            groups: r
                .vec16("supported_groups")?
                .u16_list("supported_groups", NamedGroup)?,
        },
        ExtensionType::EC_POINT_FORMATS => ExtensionData::EcPointFormats {
            formats: r.vec8("ec_point_formats")?.rest().to_vec(),
        },
        ExtensionType::SIGNATURE_ALGORITHMS | ExtensionType::SIGNATURE_ALGORITHMS_CERT => {
            ExtensionData::SignatureAlgorithms {
                schemes: r
                    .vec16("signature_algorithms")?
                    .u16_list("signature_algorithms", SignatureScheme)?,
            }
        }
        ExtensionType::SUPPORTED_VERSIONS => ExtensionData::SupportedVersions {
            versions: r
                .vec8("supported_versions")?
                .u16_list("supported_versions", ProtocolVersion)?,
        },
        ExtensionType::KEY_SHARE => {
            let mut list = r.vec16("key_share client_shares")?;
            let mut shares = Vec::new();
            while !list.is_empty() {
                let group = NamedGroup(list.u16("key_share group")?);
                let key = list.vec16("key_share key_exchange")?;
                shares.push(KeyShareEntry {
                    group,
                    key_exchange_length: key.remaining(),
                });
            }
            ExtensionData::KeyShare { shares }
        }
        ExtensionType::PSK_KEY_EXCHANGE_MODES => ExtensionData::PskKeyExchangeModes {
            modes: r.vec8("psk_key_exchange_modes")?.rest().to_vec(),
        },
        ExtensionType::PRE_SHARED_KEY => {
            let mut ids = r.vec16("pre_shared_key identities")?;
            let mut identities = 0;
            while !ids.is_empty() {
                ids.vec16("pre_shared_key identity")?;
                ids.take(4, "pre_shared_key obfuscated_ticket_age")?;
                identities += 1;
            }
            let mut list = r.vec16("pre_shared_key binders")?;
            let mut binders = 0;
            while !list.is_empty() {
                list.vec8("pre_shared_key binder")?;
                binders += 1;
            }
            ExtensionData::PreSharedKey {
                identities,
                binders,
            }
        }
        ExtensionType::SESSION_TICKET => ExtensionData::SessionTicket {
            ticket_length: r.rest().len(),
        },
        ExtensionType::PADDING => ExtensionData::Padding {
            padding_length: r.rest().len(),
        },
        // draft-ietf-tls-esni §5
        ExtensionType::ENCRYPTED_CLIENT_HELLO => {
            let ech_type = r.u8("encrypted_client_hello type")?;
            if ech_type == 0 {
                r.take(4, "encrypted_client_hello cipher_suite")?;
                let config_id = r.u8("encrypted_client_hello config_id")?;
                let enc = r.vec16("encrypted_client_hello enc")?.remaining();
                let payload = r.vec16("encrypted_client_hello payload")?.remaining();
                ExtensionData::EncryptedClientHello(EchInfo {
                    ech_type,
                    config_id: Some(config_id),
                    enc_length: Some(enc),
                    payload_length: Some(payload),
                })
            } else {
                r.rest();
                ExtensionData::EncryptedClientHello(EchInfo {
                    ech_type,
                    config_id: None,
                    enc_length: None,
                    payload_length: None,
                })
            }
        }
        // RFC 5746 §3.2
        ExtensionType::RENEGOTIATION_INFO => ExtensionData::RenegotiationInfo {
            renegotiated_connection_length: r.vec8("renegotiation_info")?.remaining(),
        },
        // RFC 6066 §8: status_type, then type-specific request.
        ExtensionType::STATUS_REQUEST => {
            let status_type = r.u8("status_request status_type")?;
            r.rest();
            ExtensionData::StatusRequest { status_type }
        }
        // RFC 8879 §3
        ExtensionType::COMPRESS_CERTIFICATE => ExtensionData::CompressCertificate {
            algorithms: r
                .vec8("compress_certificate algorithms")?
                .u16_list("compress_certificate algorithms", |v| v)?,
        },
        // RFC 8449 §4
        ExtensionType::RECORD_SIZE_LIMIT => ExtensionData::RecordSizeLimit {
            limit: r.u16("record_size_limit")?,
        },
        _ if data.is_empty() => ExtensionData::Empty,
        _ => {
            r.rest();
            ExtensionData::Opaque
        }
    };
    // The field's name is looked up only for the error it would name.
    if !r.is_empty() {
        r.finish(field_name(kind))?;
    }
    Ok(decoded)
}

fn protocol_list(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<Protocol>, Malformed> {
    let mut list = r.vec16(field)?;
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let name = list.vec8(field)?.rest();
        if name.is_empty() {
            return Err(Malformed::new(field, "empty protocol name"));
        }
        protocols.push(Protocol::from_raw(name));
    }
    Ok(protocols)
}

fn field_name(kind: ExtensionType) -> &'static str {
    kind.name().unwrap_or("extension body")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_key_share_lengths() {
        // one X25519MLKEM768 share of 1,216 bytes, one x25519 share of 32
        let mut body = vec![];
        let mut shares = vec![0x11, 0xec, 0x04, 0xc0];
        shares.extend(vec![0; 1216]);
        shares.extend([0x00, 0x1d, 0x00, 0x20]);
        shares.extend(vec![0; 32]);
        body.extend((shares.len() as u16).to_be_bytes());
        body.extend(shares);
        let ExtensionData::KeyShare { shares } = decode(ExtensionType::KEY_SHARE, &body) else {
            panic!("not decoded")
        };
        assert_eq!(shares.len(), 2);
        assert_eq!(shares[0].group, NamedGroup::X25519MLKEM768);
        assert_eq!(shares[0].key_exchange_length, 1216);
        assert_eq!(shares[1].key_exchange_length, 32);
    }

    #[test]
    fn keeps_a_broken_extension_as_evidence() {
        let got = decode(ExtensionType::ALPN, &[0x00, 0x05, 0x02, b'h']);
        assert!(matches!(got, ExtensionData::Malformed { .. }), "{got:?}");
    }

    #[test]
    fn rejects_trailing_bytes_in_supported_versions() {
        let got = decode(ExtensionType::SUPPORTED_VERSIONS, &[0x02, 0x03, 0x04, 0xff]);
        assert!(matches!(got, ExtensionData::Malformed { .. }), "{got:?}");
    }
}
