//! The `ec2` kit against moto: every instance hubdesk launches (the cluster desk's workers,
//! `hubdesk aws up`'s hub and NFS nodes) is IMDSv2-only, with the hop limit and the endpoint
//! said explicitly, and a worker carries an instance profile only when one is configured for
//! workers — never the hub's.
//!
//! What moto can prove: it records `HttpTokens` as sent and defaults it to `optional`, so
//! `required` is ours (an instance launched without the kit is the negative control). It
//! defaults the hop limit to 1 and the endpoint to `enabled` when they are left out, so for
//! those two the unit tests on the built request (`ec2::run`, `cluster::fleet`,
//! `provision::cloud`) are the proof; here they are checked as recorded.
use std::{collections::BTreeSet, process::Command};

use aws_sdk_ec2::types::{
    HttpTokensState, Instance, InstanceAttributeName, InstanceMetadataEndpointState,
};
use hubdesk::{
    cluster::{fleet::LaunchRequest, Ec2Fleet, WorkerFleet},
    config::{ClusterConfig, Config},
    doctor::{self, Level},
};

use crate::{
    cluster_peers::{venv_bin, Moto, REGION},
    provision::{by_tag, hubdesk, text, unpack, user_data_text, value, SSH},
};

/// Makes an IAM role and an instance profile of the same name in moto's IAM (moto refuses a
/// launch that names a profile it does not know): the profile's ARN.
fn instance_profile(moto: &Moto, name: &str) -> String {
    let script = format!(
        "import boto3, json\n\
         iam = boto3.client('iam', endpoint_url='{url}', region_name='{REGION}',\n\
             aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         trust = {{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow',\n\
             'Principal': {{'Service': 'ec2.amazonaws.com'}}, 'Action': 'sts:AssumeRole'}}]}}\n\
         iam.create_role(RoleName='{name}', AssumeRolePolicyDocument=json.dumps(trust))\n\
         p = iam.create_instance_profile(InstanceProfileName='{name}')['InstanceProfile']\n\
         iam.add_role_to_instance_profile(InstanceProfileName='{name}', RoleName='{name}')\n\
         print(p['Arn'])\n",
        url = moto.url
    );
    let out = Command::new(venv_bin("python"))
        .args(["-c", &script])
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn described(moto: &Moto, id: &str) -> Instance {
    let out = moto
        .client()
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0].clone()
}

/// The metadata options as moto recorded them: (HttpTokens, hop limit, endpoint).
fn metadata(i: &Instance) -> (String, i32, String) {
    let m = i
        .metadata_options()
        .unwrap_or_else(|| panic!("no MetadataOptions on {:?}", i.instance_id()));
    (
        m.http_tokens()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        m.http_put_response_hop_limit().unwrap_or_default(),
        m.http_endpoint()
            .map(|e| e.as_str().to_string())
            .unwrap_or_default(),
    )
}

fn imdsv2_hop_1() -> (String, i32, String) {
    (
        HttpTokensState::Required.as_str().to_string(),
        1,
        InstanceMetadataEndpointState::Enabled.as_str().to_string(),
    )
}

fn profile_arn(i: &Instance) -> Option<String> {
    i.iam_instance_profile()
        .and_then(|p| p.arn())
        .map(str::to_string)
}

fn request(launch: &str, count: u32) -> LaunchRequest {
    LaunchRequest {
        count,
        launch_id: launch.into(),
        client_token: format!("hubdesk-{launch}-0"),
        user_data: "#!/bin/sh\n".into(),
    }
}

fn workers(ami: &str, profile: &str) -> ClusterConfig {
    let mut c = Config::default().cluster;
    c.name = "camp".into();
    c.worker.ami = ami.into();
    c.worker.instance_profile = profile.into();
    c
}

#[tokio::test]
async fn ec2_workers_are_imdsv2_only_and_carry_only_their_own_profile() {
    let Some(moto) = Moto::start(&[]).await else {
        return;
    };
    let ami = moto.some_ami().await;

    // The negative control: an instance launched without the kit (no MetadataOptions) is
    // recorded as `optional`, so a `required` below was sent by hubdesk.
    let raw = moto
        .client()
        .run_instances()
        .image_id(&ami)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let raw = described(&moto, raw.instances()[0].instance_id().unwrap()).await;
    assert_eq!(metadata(&raw).0, HttpTokensState::Optional.as_str());

    // No profile configured for workers: none sent.
    let fleet = Ec2Fleet::from_sdk(&moto.sdk("testing", "testing"), &workers(&ami, ""));
    let calls = fleet.counter();
    let launched = fleet.launch(&request("l1", 1)).await.unwrap();
    assert_eq!(launched.len(), 1);
    for w in &launched {
        let i = described(&moto, &w.id).await;
        assert_eq!(metadata(&i), imdsv2_hop_1(), "{}", w.id);
        assert_eq!(
            profile_arn(&i),
            None,
            "a worker without a configured profile"
        );
    }

    // The workers' own profile, when one is configured.
    let arn = instance_profile(&moto, "camp-worker");
    let own = Ec2Fleet::from_sdk(
        &moto.sdk("testing", "testing"),
        &workers(&ami, "camp-worker"),
    );
    let launched = own.launch(&request("l2", 1)).await.unwrap();
    let i = described(&moto, &launched[0].id).await;
    assert_eq!(metadata(&i), imdsv2_hop_1());
    assert_eq!(profile_arn(&i).as_deref(), Some(arn.as_str()));

    // Every operation the cluster desk sends is one deploy/iam-policy.json allows.
    fleet.dry_run(&request("l3", 1)).await.unwrap();
    let all = fleet.instances().await.unwrap();
    fleet.instance_types(&["t3.large".into()]).await.unwrap();
    fleet.describe(&[all[0].id.clone()]).await.unwrap();
    fleet.terminate(&all[0]).await.unwrap();
    let sent: BTreeSet<String> = calls.ops().into_iter().collect();
    let policy: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/iam-policy.json")).unwrap();
    let allowed: BTreeSet<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            serde_json::Value::Array(a) => {
                a.iter().map(|a| a.as_str().unwrap().to_string()).collect()
            }
            _ => vec![],
        })
        .collect();
    assert_eq!(
        sent,
        [
            "DescribeImages",
            "DescribeInstanceTypes",
            "DescribeInstances",
            "RunInstances",
            "TerminateInstances"
        ]
        .map(String::from)
        .into(),
        "the operations a fleet sends (its call log)"
    );
    for op in &sent {
        assert!(
            allowed.contains(&format!("ec2:{op}")),
            "{op} not in the policy"
        );
    }
}

#[tokio::test]
async fn ec2_aws_up_nodes_are_imdsv2_only_and_workers_never_get_the_hubs_profile() {
    let Some(moto) = Moto::start(&[]).await else {
        return;
    };
    let c = moto.client();
    let ami = moto.some_ami().await;
    let hub_arn = instance_profile(&moto, "camp-hub");
    let common = [
        "--camp",
        "spring",
        "--ssh-cidr",
        SSH,
        "--ami",
        &ami,
        "--hubdesk-url",
        "https://releases.example.invalid/hubdesk",
        "--hubdesk-sha256",
        &"a".repeat(64),
        "--instance-profile",
        "camp-hub",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = ["aws", "up", "--yes"]
            .iter()
            .chain(common.iter())
            .chain(extra.iter())
            .copied()
            .collect();
        hubdesk(&moto, &args)
    };

    // The workers' profile must not be the hub's (IAM names ignore case): refused before any
    // change.
    let o = run(&["--worker-instance-profile", "Camp-Hub"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("--worker-instance-profile Camp-Hub is the hub node's profile"),
        "{err}"
    );
    let o = run(&["--worker-instance-profile", "camp worker"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("is not an instance profile"),
        "{:?}",
        text(&o)
    );
    let none = c
        .describe_instances()
        .filters(by_tag("hubdesk:camp", "spring"))
        .send()
        .await
        .unwrap();
    assert!(
        none.reservations().is_empty(),
        "refused means nothing launched"
    );

    // up with only --instance-profile.
    let o = run(&[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let node = |role: &'static str| {
        let c = c.clone();
        async move {
            let out = c
                .describe_instances()
                .filters(by_tag("hubdesk:camp", "spring"))
                .filters(by_tag("hubdesk:role", role))
                .send()
                .await
                .unwrap();
            out.reservations()[0].instances()[0].clone()
        }
    };
    let (hub, nfs) = (node("hub").await, node("nfs").await);
    assert_eq!(metadata(&hub), imdsv2_hop_1(), "hub node");
    assert_eq!(metadata(&nfs), imdsv2_hop_1(), "NFS node");
    assert_eq!(profile_arn(&hub).as_deref(), Some(hub_arn.as_str()));
    assert_eq!(profile_arn(&nfs), None, "the NFS node has no role");

    // What the hub node's cluster desk is told: no profile for workers, the hub's own named.
    let attr = c
        .describe_instance_attribute()
        .instance_id(hub.instance_id().unwrap())
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let script = user_data_text(attr.user_data().unwrap().value().unwrap());
    let toml = unpack(value(&script, "HUBDESK_TOML"));
    let path = std::env::temp_dir().join(format!("hubdesk-ec2-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, &toml).unwrap();
    let cfg = Config::load(Some(&path));
    std::fs::remove_file(&path).ok();
    let cfg = cfg.unwrap_or_else(|e| panic!("{e:#}\n{toml}"));
    assert_eq!(cfg.cluster.worker.instance_profile, "", "{toml}");
    assert_eq!(cfg.aws.hub_instance_profile, "camp-hub", "{toml}");
    let check = doctor::check_worker_profile(&cfg).unwrap();
    assert_eq!(check.level, Level::Ok, "{check}");

    // A worker launched from that configuration, as the cluster desk on the hub node would.
    let fleet = Ec2Fleet::from_sdk(&moto.sdk("testing", "testing"), &cfg.cluster);
    let launched = fleet.launch(&request("w1", 1)).await.unwrap();
    let worker = described(&moto, &launched[0].id).await;
    assert_eq!(metadata(&worker), imdsv2_hop_1(), "worker");
    assert_eq!(
        profile_arn(&worker),
        None,
        "the worker must not get the hub's profile"
    );
    assert_eq!(worker.subnet_id(), hub.subnet_id());

    // The negative control of the last check: had the hub's profile been written for the
    // workers (as before), the same launch would carry it, and doctor would fail.
    let mut leaky = cfg.clone();
    leaky.cluster.worker.instance_profile = "camp-hub".into();
    let fleet = Ec2Fleet::from_sdk(&moto.sdk("testing", "testing"), &leaky.cluster);
    let launched = fleet.launch(&request("w2", 1)).await.unwrap();
    let worker = described(&moto, &launched[0].id).await;
    assert_eq!(profile_arn(&worker).as_deref(), Some(hub_arn.as_str()));
    let check = doctor::check_worker_profile(&leaky).unwrap();
    assert_eq!(check.level, Level::Fail, "{check}");

    let o = hubdesk(
        &moto,
        &["aws", "down", "--yes", "--camp", "spring", "--delete-homes"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
}
