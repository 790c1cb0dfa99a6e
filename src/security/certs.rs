//! `gregor certs`: a throwaway certificate authority with a broker and a client certificate
//! signed by it, as PEM files, to try TLS listeners without a PKI.

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

/// The files `write_dev_certs` makes, by name in the directory.
pub const CA_FILE: &str = "ca.pem";
pub const BROKER_FILE: &str = "broker.pem";
pub const CLIENT_CERT_FILE: &str = "client.crt";
pub const CLIENT_KEY_FILE: &str = "client.key";
pub const CLIENT_FILE: &str = "client.pem";

/// The subject of the client certificate, as the broker names its principal.
pub const CLIENT_PRINCIPAL: &str = "User:CN=client,O=Gregor dev";

/// `O=Gregor dev` and `CN=common_name`, without rcgen's default CN.
fn subject(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Gregor dev");
    name.push(DnType::CommonName, common_name);
    name
}

/// Writes a CA, a broker key and chain valid for `hosts`, and a client key and chain into
/// `dir`; returns what to put in server.properties and in a client's settings.
pub fn write_dev_certs(dir: &Path, hosts: &[String]) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = subject("Gregor dev CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;

    let leaf = |common_name: &str, names: Vec<String>, purposes: Vec<ExtendedKeyUsagePurpose>| -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = subject(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = purposes;
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        Ok((key.serialize_pem(), format!("{}{}", cert.pem(), ca_cert.pem())))
    };
    // A broker is also a client of the other brokers and controllers (mutual TLS between them).
    let (broker_key, broker_chain) = leaf(&hosts[0], hosts.to_vec(), vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth])?;
    let (client_key, client_chain) = leaf("client", Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth])?;

    let write = |name: &str, text: &str| -> Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path.canonicalize()?.display().to_string())
    };
    let ca_path = write(CA_FILE, &ca_cert.pem())?;
    let broker_path = write(BROKER_FILE, &format!("{broker_key}{broker_chain}"))?;
    let client_cert_path = write(CLIENT_CERT_FILE, &client_chain)?;
    let client_key_path = write(CLIENT_KEY_FILE, &client_key)?;
    let client_path = write(CLIENT_FILE, &format!("{client_key}{client_chain}"))?;
    let host = &hosts[0];
    Ok(format!(
        "# server.properties\n\
         listeners=PLAINTEXT://{host}:9092,SSL://{host}:9093\n\
         ssl.keystore.type=PEM\n\
         ssl.keystore.location={broker_path}\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={ca_path}\n\
         # for mutual TLS (clients then are {CLIENT_PRINCIPAL}):\n\
         # ssl.client.auth=required\n\
         \n\
         # librdkafka clients (confluent-kafka, kcat -X ...)\n\
         security.protocol=SSL\n\
         ssl.ca.location={ca_path}\n\
         # with mutual TLS:\n\
         # ssl.certificate.location={client_cert_path}\n\
         # ssl.key.location={client_key_path}\n\
         \n\
         # Java clients (client.properties)\n\
         security.protocol=SSL\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={ca_path}\n\
         # with mutual TLS:\n\
         # ssl.keystore.type=PEM\n\
         # ssl.keystore.location={client_path}\n"
    ))
}
