//! The cluster desk: launch and remove jobs on the fakes (fast, every error path), then against
//! the real peers: EC2 in moto, a Docker-in-Docker swarm, and workers that boot from the
//! rendered user-data (`cluster_peers`).
use std::{sync::Arc, time::Duration};

use hubdesk::{
    cluster::{
        fake::{notebook, FakeWorld},
        fleet::{FleetError, TAG_LAUNCH},
        jobs, Cluster, ContainerRuntime, DockerRuntime, Ec2Fleet, RuntimeError, WorkerFleet,
    },
    config::{AwsConfig, ClusterConfig, Config},
    db,
    domain::Actor,
};
use serde_json::Value;

use crate::{
    cluster_peers::{docker, user_data, Hypervisor, Moto, Swarm, REGION},
    helpers::{spawn_app_with_state, TestApp},
};

fn cluster_config(name: &str) -> ClusterConfig {
    let mut c = Config::default().cluster;
    c.name = name.into();
    c.worker.ami = "ami-fake".into();
    c.join_timeout_secs = 20;
    c.drain_timeout_secs = 20;
    c
}

/// The real app with the cluster's job handlers, built on the app's own pool.
async fn app_with(make: impl FnOnce(sqlx::PgPool) -> Cluster) -> (TestApp, Arc<Cluster>) {
    let slot: Arc<std::sync::Mutex<Option<Arc<Cluster>>>> = Default::default();
    let put = slot.clone();
    let app = spawn_app_with_state(
        |_| {},
        move |s| {
            let cluster = Arc::new(make(s.pool.clone()).with_poll(Duration::from_millis(200)));
            s.job_handlers.extend(jobs::handlers(&cluster));
            s.cluster = Some(cluster.clone());
            *put.lock().unwrap() = Some(cluster);
        },
    )
    .await;
    let cluster = slot.lock().unwrap().take().unwrap();
    (app, cluster)
}

async fn job(app: &TestApp, id: uuid::Uuid) -> db::jobs::JobRow {
    let mut conn = app.pool.acquire().await.unwrap();
    db::jobs::get(&mut conn, id).await.unwrap().unwrap()
}

/// Waits until the job is final (or, with `until_error`, has an error recorded).
async fn finished(app: &TestApp, id: uuid::Uuid, secs: u64) -> db::jobs::JobRow {
    app.state.jobs.wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let row = job(app, id).await;
        if row.state.is_final() {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {} still {} after {secs} s: steps {:?}, error {:?}",
            row.kind,
            row.state,
            row.steps,
            row.error
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn steps(row: &db::jobs::JobRow) -> Vec<&str> {
    row.steps.iter().map(|s| s.name.as_str()).collect()
}

/// Puts a finished job back as if its runner had died right after `RunInstances`, before it
/// recorded any step: the next claim resumes it from the start.
async fn crash_and_requeue(app: &TestApp, id: uuid::Uuid) {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', steps = '[]', result = NULL, error = NULL,
                finished_at = NULL, run_after = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn cluster_launch_on_fakes_finishes_a_partial_launch_and_resumes_without_launching_twice() {
    let world = FakeWorld::new();
    world.with(|w| w.partial_once = Some(1));
    let w2 = world.clone();
    let (app, cluster) = app_with(move |pool| {
        Cluster::new(
            Arc::new(w2.runtime()),
            Arc::new(w2.fleet("camp")),
            pool,
            cluster_config("camp"),
        )
    })
    .await;
    let id = cluster.launch(&Actor::System, 3).await.unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        steps(&row),
        ["launched", "running", "joined", "token-rotated"]
    );
    assert_eq!(row.payload, serde_json::json!({"count": 3}));
    let launch_id = id.to_string();
    let ours = |w: &hubdesk::cluster::fake::World| {
        w.instances
            .iter()
            .filter(|i| i.tags.get(TAG_LAUNCH) == Some(&launch_id))
            .count()
    };
    assert_eq!(world.with(|w| ours(w)), 3, "1 + the 2 missing");
    assert_eq!(world.with(|w| w.calls["ec2.run_instances"]), 2);
    assert_eq!(
        row.result.as_ref().unwrap()["instances"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    crash_and_requeue(&app, id).await;
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        world.with(|w| ours(w)),
        3,
        "the resumed launch started nothing"
    );
    assert_eq!(world.with(|w| w.calls["ec2.run_instances"]), 2);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action IN ('cluster.launch', 'cluster.joined')"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn cluster_launch_on_fakes_retries_capacity_and_fails_access_denied_plainly() {
    let world = FakeWorld::new();
    world.with(|w| {
        w.launch_error_once = Some(FleetError::InsufficientCapacity {
            instance_type: "t3.large".into(),
            message: "We currently do not have sufficient t3.large capacity".into(),
        })
    });
    let w2 = world.clone();
    let (app, cluster) = app_with(move |pool| {
        Cluster::new(
            Arc::new(w2.runtime()),
            Arc::new(w2.fleet("camp")),
            pool,
            cluster_config("camp"),
        )
    })
    .await;
    let id = cluster.launch(&Actor::System, 1).await.unwrap();
    // First attempt: a plain error, queued again; the second attempt (after the backoff) works.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    app.state.jobs.wake();
    loop {
        let row = job(&app, id).await;
        if let Some(e) = &row.error {
            assert!(e.contains("no capacity for t3.large"), "{e}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no capacity error seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(row.attempts, 2);

    world.with(|w| {
        w.fleet_error = Some(FleetError::AccessDenied {
            code: "UnauthorizedOperation".into(),
            message: "You are not authorized to perform this operation.".into(),
        })
    });
    let id = cluster.launch(&Actor::System, 1).await.unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "failed");
    let e = row.error.unwrap();
    assert!(
        e.starts_with("AWS refused (UnauthorizedOperation)") && e.contains("ec2:RunInstances"),
        "{e}"
    );
    assert_eq!(row.attempts, 1, "no retry can help");
}

/// The fakes' cluster in the real app.
async fn fake_desk(world: &FakeWorld) -> (TestApp, Arc<Cluster>) {
    fake_desk_with(world, cluster_config("camp")).await
}

async fn fake_desk_with(world: &FakeWorld, config: ClusterConfig) -> (TestApp, Arc<Cluster>) {
    let w2 = world.clone();
    app_with(move |pool| {
        Cluster::new(
            Arc::new(w2.runtime()),
            Arc::new(w2.fleet("camp")),
            pool,
            config,
        )
    })
    .await
}

/// The token a rendered user-data joins with.
fn token_of(user_data: &str) -> String {
    let rest = user_data.split_once("--token '").expect("a join line").1;
    rest.split_once('\'').unwrap().0.to_string()
}

async fn rotations_audited(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM audit_log WHERE action = 'cluster.token_rotated'")
        .await
}

#[tokio::test]
async fn cluster_launch_on_fakes_rotates_the_join_token_once_its_workers_joined() {
    let world = FakeWorld::new();
    let (app, cluster) = fake_desk(&world).await;
    let id = cluster.launch(&Actor::System, 2).await.unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        steps(&row),
        ["launched", "running", "joined", "token-rotated"]
    );
    assert_eq!(row.result.as_ref().unwrap()["join_token"], "rotated");
    let handed_out = world.with(|w| token_of(&w.user_data[0]));
    assert_eq!(handed_out, "SWMTKN-1-fake-token-0");
    world.with(|w| {
        assert_eq!(w.calls["docker.rotate_worker_token"], 1);
        assert_ne!(
            w.worker_token, handed_out,
            "the token in the user-data is void"
        );
        assert_eq!(w.retired_tokens, std::slice::from_ref(&handed_out));
    });
    assert_eq!(rotations_audited(&app).await, 1);
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'cluster.token_rotated'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        detail.contains(&id.to_string()) && detail.contains("joined"),
        "{detail}"
    );

    // The next launch hands out the current token, its workers join, and it rotates again.
    let second = cluster.launch(&Actor::System, 1).await.unwrap();
    let row = finished(&app, second, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    world.with(|w| {
        assert_eq!(token_of(&w.user_data[1]), "SWMTKN-1-fake-token-1");
        assert_eq!(w.calls["docker.rotate_worker_token"], 2);
        assert_eq!(w.worker_token, "SWMTKN-1-fake-token-2");
    });
    assert_eq!(rotations_audited(&app).await, 2);
}

#[tokio::test]
async fn cluster_launch_on_fakes_that_fails_for_good_rotates_too() {
    // A fatal error (AccessDenied) before any instance: the launch still ends with a rotation.
    let world = FakeWorld::new();
    world.with(|w| {
        w.fleet_error = Some(FleetError::AccessDenied {
            code: "UnauthorizedOperation".into(),
            message: "You are not authorized to perform this operation.".into(),
        })
    });
    let mut config = cluster_config("camp");
    config.join_timeout_secs = 2;
    let (app, cluster) = fake_desk_with(&world, config).await;
    let id = cluster.launch(&Actor::System, 1).await.unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "failed");
    assert!(
        row.error.as_deref().unwrap().starts_with("AWS refused"),
        "the job's own error, nothing added: {:?}",
        row.error
    );
    assert_eq!(steps(&row), ["token-rotated"]);
    assert_eq!(world.with(|w| w.calls["docker.rotate_worker_token"]), 1);
    assert_eq!(rotations_audited(&app).await, 1);

    // The engine down as well: the rotation that could not happen is part of the job's error.
    world.with(|w| {
        w.runtime_error = Some(hubdesk::cluster::RuntimeError::Unreachable {
            host: "unix:///run/hubdesk/docker.sock".into(),
            detail: "connection refused".into(),
        })
    });
    let id = cluster.launch(&Actor::System, 1).await.unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "failed");
    let e = row.error.clone().unwrap();
    assert!(
        e.starts_with("AWS refused")
            && e.contains("; then: rotating the swarm's worker join token: cannot reach"),
        "{e}"
    );
    assert!(steps(&row).is_empty());
    assert_eq!(rotations_audited(&app).await, 1);
    world.with(|w| w.runtime_error = None);

    // The last attempt's retry: instances that never join (they booted, the join is withheld),
    // one attempt allowed. The token in their user-data dies with the launch.
    world.with(|w| {
        w.fleet_error = None;
        w.auto_join = false;
    });
    let mut tx = app.pool.begin().await.unwrap();
    let id = db::jobs::enqueue(
        &mut tx,
        jobs::LAUNCH_KIND,
        &serde_json::json!({"count": 1}),
        "system",
        1,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "failed");
    assert!(
        row.error
            .as_deref()
            .unwrap()
            .contains("not in the swarm after"),
        "{:?}",
        row.error
    );
    assert_eq!(steps(&row), ["launched", "running", "token-rotated"]);
    let instance = world.with(|w| {
        w.instances
            .iter()
            .find(|i| i.tags.get(TAG_LAUNCH) == Some(&id.to_string()))
            .cloned()
            .unwrap()
    });
    let refused = world.with(|w| w.boot(&instance)).unwrap_err();
    assert!(refused.contains("valid join token"), "{refused}");
    assert_eq!(rotations_audited(&app).await, 2);
}

#[tokio::test]
async fn cluster_launches_in_flight_hand_the_token_on_and_the_last_one_rotates() {
    let world = FakeWorld::new();
    world.with(|w| w.auto_join = false);
    let (app, cluster) = fake_desk(&world).await;
    let a = cluster.launch(&Actor::System, 1).await.unwrap();
    let b = cluster.launch(&Actor::System, 1).await.unwrap();
    app.state.jobs.wake();
    let instance_of = |launch: uuid::Uuid| {
        world.with(|w| {
            w.instances
                .iter()
                .find(|i| i.tags.get(TAG_LAUNCH) == Some(&launch.to_string()))
                .cloned()
        })
    };
    let (ia, ib) = eventually("both launches' instances", 20, || async {
        Some((instance_of(a)?, instance_of(b)?))
    })
    .await;
    world.with(|w| {
        assert_eq!(token_of(&w.user_data[0]), "SWMTKN-1-fake-token-0");
        assert_eq!(token_of(&w.user_data[1]), "SWMTKN-1-fake-token-0");
    });

    // B's worker joins first: A is still in flight, so B hands the rotation on to A.
    world.with(|w| w.boot(&ib)).unwrap();
    let row = finished(&app, b, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        steps(&row),
        ["launched", "running", "joined", "token-handed-on"]
    );
    assert_eq!(
        row.result.as_ref().unwrap()["join_token"],
        serde_json::json!({"handed_on_to": [a]})
    );
    assert_eq!(
        world.with(|w| w.calls.get("docker.rotate_worker_token").copied()),
        None
    );
    assert_eq!(rotations_audited(&app).await, 0);

    // So A's worker, booting with the same token, still gets in; A ends last and rotates.
    world
        .with(|w| w.boot(&ia))
        .expect("A's token is still valid");
    let row = finished(&app, a, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        steps(&row),
        ["launched", "running", "joined", "token-rotated"]
    );
    world.with(|w| {
        assert_eq!(w.calls["docker.rotate_worker_token"], 1);
        assert_eq!(w.retired_tokens, ["SWMTKN-1-fake-token-0"]);
    });
    assert_eq!(rotations_audited(&app).await, 1);
    // No instance can join with what any user-data holds.
    for i in [&ia, &ib] {
        world.with(|w| w.nodes.retain(|n| n.id != format!("node-{}", i.id)));
        assert!(world.with(|w| w.boot(i)).is_err());
    }
}

#[tokio::test]
async fn cluster_launch_retried_run_instances_renders_the_current_token() {
    let world = FakeWorld::new();
    world.with(|w| {
        w.launch_error_once = Some(FleetError::InsufficientCapacity {
            instance_type: "t3.large".into(),
            message: "none".into(),
        })
    });
    let (app, cluster) = fake_desk(&world).await;
    let id = cluster.launch(&Actor::System, 1).await.unwrap();
    app.state.jobs.wake();
    eventually("the first attempt's capacity error", 20, || async {
        job(&app, id).await.error.map(|_| ())
    })
    .await;
    // Someone rotates between the attempts (the backoff is 5 s).
    cluster.runtime().rotate_worker_token().await.unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    world.with(|w| {
        assert_eq!(w.user_data.len(), 1);
        assert_eq!(token_of(&w.user_data[0]), "SWMTKN-1-fake-token-1");
    });
}

#[tokio::test]
async fn cluster_launch_whose_runner_died_on_the_last_attempt_rotates_when_failed() {
    let world = FakeWorld::new();
    let (app, _cluster) = fake_desk(&world).await;
    // As a runner leaves it when it dies mid-way through the only attempt.
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, actor, max_attempts, state, attempts, steps,
                           lease_owner, lease_until)
         VALUES ($1, $2, '{\"count\": 1}', 'system', 1, 'running', 1,
                 '[{\"name\": \"launched\", \"at\": \"2026-12-01T10:00:00.000000Z\"}]',
                 'dead-runner', now() - interval '1 second')",
    )
    .bind(id)
    .bind(jobs::LAUNCH_KIND)
    .execute(&app.pool)
    .await
    .unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "failed");
    assert_eq!(
        row.error.as_deref(),
        Some("runner lost (lease expired) on attempt 1 of 1")
    );
    assert_eq!(steps(&row), ["launched", "token-rotated"]);
    assert_eq!(world.with(|w| w.calls["docker.rotate_worker_token"]), 1);
    assert_eq!(rotations_audited(&app).await, 1);
}

#[tokio::test]
async fn cluster_remove_on_fakes_drains_moves_students_removes_and_terminates() {
    let world = FakeWorld::new();
    let a = world.add_instance(Some("camp"), "l");
    let b = world.add_instance(Some("camp"), "l");
    world.with(|w| {
        w.join(&a);
        w.join(&b);
        w.notebooks
            .push(notebook("bob-smith", &format!("node-{}", a.id)));
    });
    let untagged = world.add_instance(None, "x");
    let w2 = world.clone();
    let (app, cluster) = app_with(move |pool| {
        Cluster::new(
            Arc::new(w2.runtime()),
            Arc::new(w2.fleet("camp")),
            pool,
            cluster_config("camp"),
        )
    })
    .await;
    let err = cluster
        .remove(&Actor::System, &untagged.id)
        .await
        .unwrap_err();
    assert!(err.is_not_ours(), "{err}");
    assert_eq!(
        world.with(|w| w.calls.get("ec2.terminate_instances").copied()),
        None
    );
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);

    let id = cluster.remove(&Actor::System, &a.id).await.unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        steps(&row),
        ["draining", "drained", "removed", "terminated"]
    );
    let result = row.result.unwrap();
    assert_eq!(result["students"], serde_json::json!(["bob-smith"]));
    assert_eq!(result["moved"], true);
    world.with(|w| {
        assert!(!w.nodes.iter().any(|n| n.id == format!("node-{}", a.id)));
        assert_eq!(w.notebooks[0].node_id, format!("node-{}", b.id));
        let state = |id: &str| {
            w.instances
                .iter()
                .find(|i| i.id == id)
                .unwrap()
                .state
                .as_str()
        };
        assert_eq!(state(&a.id), "terminated");
        assert_eq!(state(&b.id), "running");
        assert_eq!(state(&untagged.id), "running");
    });
}

#[tokio::test]
async fn cluster_wrong_docker_host_is_a_plain_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("tcp://127.0.0.1:{port}");
    let err = DockerRuntime::connect(&host)
        .await
        .err()
        .expect("nothing listens there");
    let text = err.to_string();
    assert!(matches!(err, RuntimeError::Unreachable { .. }));
    assert!(
        text.starts_with(&format!("cannot reach the Docker engine at {host}: ")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    let err = DockerRuntime::connect("unix:///nonexistent/docker.sock")
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("/nonexistent/docker.sock"),
        "{err}"
    );
}

fn aws(moto: &Moto) -> AwsConfig {
    AwsConfig {
        region: REGION.into(),
        endpoint_url: moto.url.clone(),
        ..AwsConfig::default()
    }
}

#[tokio::test]
async fn cluster_ec2_errors_against_moto_are_plain() {
    let (Some(plain), Some(locked), Some(strict)) = tokio::join!(
        Moto::start(&[]),
        Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "2")]),
        Moto::start(&[("MOTO_ENABLE_AMI_VALIDATION", "true")]),
    ) else {
        return;
    };
    let mut cfg = cluster_config("camp");
    cfg.worker.ami = plain.some_ami().await;
    let req = hubdesk::cluster::fleet::LaunchRequest {
        count: 1,
        launch_id: "l".into(),
        client_token: "t".into(),
        user_data: "#!/bin/sh\n".into(),
    };

    // No credentials anywhere in the chain (and never ask an instance metadata service).
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && std::env::var_os("AWS_PROFILE").is_none()
    {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        let fleet = Ec2Fleet::connect(&aws(&plain), &cfg).await;
        let err = fleet.instances().await.unwrap_err();
        assert!(matches!(err, FleetError::NoCredentials(_)), "{err:?}");
        assert!(err.to_string().starts_with("no AWS credentials"), "{err}");
    }

    // A user without a policy: AccessDenied, plainly, for a look and for a launch.
    let (key, secret) = locked.powerless_user();
    let fleet = Ec2Fleet::from_sdk(&locked.sdk(&key, &secret), &cfg);
    let err = fleet.instances().await.unwrap_err();
    assert!(matches!(err, FleetError::AccessDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("not authorized"), "{err}");
    assert!(matches!(
        fleet.launch(&req).await,
        Err(FleetError::AccessDenied { .. })
    ));

    // An AMI that does not exist.
    let mut bad = cfg.clone();
    bad.worker.ami = "ami-0123456789abcdef0".into();
    let fleet = Ec2Fleet::from_sdk(&strict.sdk("testing", "testing"), &bad);
    let err = fleet.launch(&req).await.unwrap_err();
    assert!(matches!(err, FleetError::InvalidAmi(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("the worker AMI cannot be used"),
        "{err}"
    );
    assert!(matches!(
        fleet.dry_run(&req).await,
        Err(FleetError::InvalidAmi(_))
    ));

    // The DryRun of a good template passes and launches nothing.
    let fleet = Ec2Fleet::from_sdk(&plain.sdk("testing", "testing"), &cfg);
    fleet.dry_run(&req).await.unwrap();
    assert_eq!(fleet.instances().await.unwrap().len(), 0);
}

#[tokio::test]
async fn cluster_refuses_to_terminate_an_untagged_instance_without_an_aws_call() {
    let Some(moto) = Moto::start(&[]).await else {
        return;
    };
    let ami = moto.some_ami().await;
    let raw = moto.client();
    let out = raw
        .run_instances()
        .image_id(&ami)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let id = out.instances()[0].instance_id().unwrap().to_string();
    let mut cfg = cluster_config("camp");
    cfg.worker.ami = ami;
    let fleet = Ec2Fleet::from_sdk(&moto.sdk("testing", "testing"), &cfg);
    let counter = fleet.counter();
    let found = fleet.describe(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(found.len(), 1);
    let before = counter.get();
    let err = fleet.terminate(&found[0]).await.unwrap_err();
    assert_eq!(err, FleetError::NotOurs(id.clone()));
    assert_eq!(counter.get(), before, "refused before any AWS call");
    assert_eq!(counter.of("TerminateInstances"), 0);
    let state = fleet.describe(std::slice::from_ref(&id)).await.unwrap()[0].state;
    assert_eq!(state.as_str(), "running");
    // Not listed among the cluster's instances either.
    assert!(fleet.instances().await.unwrap().is_empty());
}

/// Polls `f` until it returns `Some`, up to `secs`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

const HUB_TOKEN: &str = "hub-token-that-must-never-show-0123456789";

async fn notebook_service(rt: &DockerRuntime, name: &str, label: Option<&str>, image: &str) {
    use bollard::models::{
        EndpointSpec, EndpointSpecModeEnum, ServiceSpec, TaskSpec, TaskSpecContainerSpec,
        TaskSpecPlacement,
    };
    let spec = ServiceSpec {
        name: Some(name.into()),
        labels: label.map(|l| [("hubdesk.user".to_string(), l.to_string())].into()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.into()),
                env: Some(vec![format!("JUPYTERHUB_API_TOKEN={HUB_TOKEN}")]),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec!["node.role==worker".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ..Default::default()
        }),
        ..Default::default()
    };
    rt.docker()
        .unwrap()
        .create_service(spec, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn cluster_real_swarm_workers_boot_from_user_data_join_and_leave() {
    let Some(moto) = Moto::start(&[]).await else {
        return;
    };
    let Some(swarm) = Swarm::up(1).await else {
        return;
    };
    let hv = Hypervisor::start(&swarm, &moto, "camp").await;
    let (subnet, sg) = moto.network(&swarm.subnet()).await;
    let mut cfg = cluster_config("camp");
    cfg.docker_host = swarm.docker_host();
    cfg.worker.ami = moto.some_ami().await;
    cfg.worker.subnet_id = subnet;
    cfg.worker.security_group_ids = vec![sg];
    cfg.join_timeout_secs = 120;
    cfg.drain_timeout_secs = 60;
    let runtime = Arc::new(DockerRuntime::connect(&cfg.docker_host).await.unwrap());
    let fleet = Ec2Fleet::from_sdk(&moto.sdk("testing", "testing"), &cfg);
    let counter = fleet.counter();
    let (rt, c2) = (runtime.clone(), cfg.clone());
    let (app, cluster) = app_with(move |pool| Cluster::new(rt, Arc::new(fleet), pool, c2)).await;

    // A worker's engine is not a manager: a plain error for the join token.
    let worker_engine = DockerRuntime::connect(&swarm.worker_engine(1))
        .await
        .unwrap();
    assert_eq!(
        worker_engine.swarm().await.unwrap().state.as_str(),
        "worker"
    );
    assert!(matches!(
        worker_engine.join_info().await,
        Err(RuntimeError::NotAManager { .. })
    ));

    // Launch 2: two new swarm nodes, joined with the rendered token and address.
    let started = std::time::Instant::now();
    let id = cluster.launch(&Actor::System, 2).await.unwrap();
    let row = finished(&app, id, 240).await;
    let launch_to_joined = started.elapsed();
    assert_eq!(
        row.state.as_str(),
        "succeeded",
        "{:?}; hypervisor: {:?}",
        row.error,
        hv.errors()
    );
    assert_eq!(
        steps(&row),
        ["launched", "running", "joined", "token-rotated"]
    );
    eprintln!(
        "CLUSTER launch→joined (2 workers): {} ms",
        launch_to_joined.as_millis()
    );
    // moto starts MinCount (1) per call: a partial launch, completed by a second call.
    let run_instances = counter.of("RunInstances");
    assert!((1..=2).contains(&run_instances), "{run_instances}");
    let o = cluster.overview().await;
    assert_eq!(o.swarm.state, "manager");
    assert_eq!(o.instances.len(), 2);
    let launched: Vec<String> = o.instances.iter().map(|i| i.id.clone()).collect();
    for i in &o.instances {
        let node = o
            .node(i.node_id.as_deref().expect("matched to a node"))
            .unwrap();
        assert_eq!(node.node.status.as_str(), "ready");
        assert_eq!(node.node.role.as_str(), "worker");
        assert_eq!(node.node.addr, i.private_ip);
        assert_eq!(
            node.node.hostname,
            format!("ip-{}", i.private_ip.replace('.', "-"))
        );
        assert_eq!(node.instance_id.as_deref(), Some(i.id.as_str()));
        assert!(i.problems.is_empty(), "{:?}", i.problems);
        let log = hv.boot_logs.lock().unwrap().get(&i.id).cloned().unwrap();
        assert!(
            log.contains("joining ") && !log.contains("installing"),
            "{log}"
        );
    }
    let w1 = o
        .nodes
        .iter()
        .find(|n| n.node.hostname == "worker1")
        .unwrap();
    assert_eq!(w1.problems, ["no EC2 instance launched by hubdesk"]);
    assert_eq!(o.nodes.len(), 4);

    // A launch resumed after a crash right after RunInstances launches nothing twice.
    crash_and_requeue(&app, id).await;
    let row = finished(&app, id, 120).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        counter.of("RunInstances"),
        run_instances,
        "nothing launched again"
    );
    let tagged = moto
        .client()
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{TAG_LAUNCH}"))
                .values(id.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let n: usize = tagged
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum();
    assert_eq!(n, 2);

    // Notebook services as SwarmSpawner makes them (one with the hub config's label).
    let tiny = swarm.get("HUBDESK_TINY_IMAGE").to_string();
    notebook_service(&runtime, "jupyter-bob-2dsmith", None, &tiny).await;
    notebook_service(&runtime, "jupyter-ana", Some("ana"), &tiny).await;
    notebook_service(&runtime, "jupyter-carl", None, &tiny).await;
    let o = eventually("three running notebooks", 90, || async {
        let o = cluster.overview().await;
        let placed: usize = o.nodes.iter().map(|n| n.students.len()).sum();
        (placed == 3 && o.pending.is_empty()).then_some(o)
    })
    .await;
    let mut students: Vec<String> = o.nodes.iter().flat_map(|n| n.students.clone()).collect();
    students.sort();
    assert_eq!(students, ["ana", "bob-smith", "carl"]);
    let json = serde_json::to_string(&o).unwrap();
    assert!(
        !json.contains(HUB_TOKEN),
        "a service's environment must never show"
    );
    assert!(!format!("{o:?}").contains(HUB_TOKEN));
    app.as_admin().await;
    let page = app.get_html("/cluster").await;
    assert!(!page.contains(HUB_TOKEN));
    assert!(page.contains("<span class=\"student\">bob-smith</span>"));
    if let Ok(path) = std::env::var("HUBDESK_CLUSTER_SNAPSHOT") {
        // The page as it is now, with its stylesheet inlined, for a screenshot (docs/).
        let css = app.get_html("/static/app.css").await;
        let html = page.replace(
            "<link rel=\"stylesheet\" href=\"/static/app.css\">",
            &format!("<style>{css}</style>"),
        );
        std::fs::write(path, html).unwrap();
    }

    // Remove a launched worker that runs at least one notebook.
    let (target, node_id, on_it) = o
        .instances
        .iter()
        .filter_map(|i| {
            let n = o.node(i.node_id.as_deref()?)?;
            (!n.students.is_empty()).then(|| (i.id.clone(), n.node.id.clone(), n.students.clone()))
        })
        .next()
        .expect("the spread put a notebook on a launched worker");
    let other = launched.iter().find(|i| **i != target).unwrap().clone();
    let terminations = counter.of("TerminateInstances");
    let rid = cluster.remove(&Actor::System, &target).await.unwrap();
    let row = finished(&app, rid, 180).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        steps(&row),
        ["draining", "drained", "removed", "terminated"]
    );
    let result: Value = row.result.unwrap();
    assert_eq!(result["students"], serde_json::json!(on_it));
    assert_eq!(result["moved"], true, "tasks moved before the timeout");
    assert_eq!(counter.of("TerminateInstances"), terminations + 1);
    let o = eventually("the moved notebooks running elsewhere", 60, || async {
        let o = cluster.overview().await;
        let placed: usize = o.nodes.iter().map(|n| n.students.len()).sum();
        (placed == 3 && o.pending.is_empty()).then_some(o)
    })
    .await;
    assert!(o.node(&node_id).is_none(), "the node left the swarm");
    assert!(o.instance(&target).is_none(), "terminated: not listed");
    let kept = o.instance(&other).unwrap();
    assert_eq!(kept.state.as_str(), "running");
    assert_eq!(
        o.node(kept.node_id.as_deref().unwrap())
            .unwrap()
            .node
            .status
            .as_str(),
        "ready"
    );
    let state = moto
        .client()
        .describe_instances()
        .instance_ids(&target)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_string();
    assert!(
        matches!(state.as_str(), "terminated" | "shutting-down"),
        "{state}"
    );
    eventually("the terminated worker's container stopped", 20, || async {
        hv.container_of(&target).is_none().then_some(())
    })
    .await;
    let name = format!("hubdesk-test-{}-{target}", swarm.id);
    assert!(
        docker(&["inspect", &name]).is_err(),
        "container {name} is gone"
    );
    assert!(hv.errors().is_empty(), "{:?}", hv.errors());
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'cluster.terminated'")
            .await,
        1
    );
}

/// The token in the user-data EC2 keeps for the instance a launch job started.
async fn token_in_user_data(moto: &Moto, row: &db::jobs::JobRow) -> String {
    let instance = row.result.as_ref().unwrap()["instances"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let script = user_data(&moto.client(), &instance).await.unwrap();
    token_of(&String::from_utf8(script).unwrap())
}

#[tokio::test]
async fn cluster_real_swarm_join_token_dies_with_its_launch() {
    use secrecy::ExposeSecret;
    let Some(moto) = Moto::start(&[]).await else {
        return;
    };
    let Some(swarm) = Swarm::up(0).await else {
        return;
    };
    let hv = Hypervisor::start(&swarm, &moto, "camp").await;
    let (subnet, sg) = moto.network(&swarm.subnet()).await;
    let mut cfg = cluster_config("camp");
    cfg.docker_host = swarm.docker_host();
    cfg.worker.ami = moto.some_ami().await;
    cfg.worker.subnet_id = subnet;
    cfg.worker.security_group_ids = vec![sg];
    cfg.join_timeout_secs = 120;
    let runtime = Arc::new(DockerRuntime::connect(&cfg.docker_host).await.unwrap());
    let fleet = Ec2Fleet::from_sdk(&moto.sdk("testing", "testing"), &cfg);
    let (rt, c2) = (runtime.clone(), cfg.clone());
    let (app, cluster) = app_with(move |pool| Cluster::new(rt, Arc::new(fleet), pool, c2)).await;
    let manager = format!("{}:2377", swarm.get("HUBDESK_SWARM_MANAGER_IP"));
    // Started while the first launch runs (its engine takes a few seconds).
    let spare = tokio::task::spawn_blocking({
        let spec = swarm.spare_node("rogue", 200);
        move || spec.start()
    });

    let first = cluster.launch(&Actor::System, 1).await.unwrap();
    let row = finished(&app, first, 240).await;
    assert_eq!(
        row.state.as_str(),
        "succeeded",
        "{:?}; hypervisor: {:?}",
        row.error,
        hv.errors()
    );
    assert_eq!(
        steps(&row),
        ["launched", "running", "joined", "token-rotated"]
    );
    let old = token_in_user_data(&moto, &row).await;
    let current = runtime
        .join_info()
        .await
        .unwrap()
        .token
        .expose_secret()
        .clone();
    assert!(old.starts_with("SWMTKN-1-"), "{old}");
    assert_ne!(
        old, current,
        "the manager's worker token is no longer the one handed out"
    );

    // A fresh machine on the same network cannot join with the token from the user-data …
    let spare = spare.await.unwrap().expect("a spare node");
    let try_join = |token: String| {
        let (name, manager) = (spare.name.clone(), manager.clone());
        tokio::task::spawn_blocking(move || {
            crate::cluster_peers::docker(&[
                "exec", &name, "docker", "swarm", "join", "--token", &token, &manager,
            ])
        })
    };
    let refused = try_join(old.clone()).await.unwrap().unwrap_err();
    assert!(refused.contains("join token"), "{refused}");
    eprintln!("JOIN-TOKEN the first launch's token, read back from its user-data: {refused}");
    // … while the same join with the manager's current token works (the negative control).
    try_join(current.clone())
        .await
        .unwrap()
        .expect("the current token admits it");
    let spare_id = spare.node_id();
    assert!(!spare_id.is_empty());
    assert!(runtime
        .nodes()
        .await
        .unwrap()
        .iter()
        .any(|n| n.id == spare_id));
    spare.leave().unwrap();
    runtime.remove_node(&spare_id, true).await.unwrap();
    assert!(!runtime
        .nodes()
        .await
        .unwrap()
        .iter()
        .any(|n| n.id == spare_id));

    // A second launch hands out the current token, still joins, and rotates in its turn.
    let second = cluster.launch(&Actor::System, 1).await.unwrap();
    let row = finished(&app, second, 240).await;
    assert_eq!(
        row.state.as_str(),
        "succeeded",
        "{:?}; hypervisor: {:?}",
        row.error,
        hv.errors()
    );
    assert_eq!(
        steps(&row),
        ["launched", "running", "joined", "token-rotated"]
    );
    let second_token = token_in_user_data(&moto, &row).await;
    assert_eq!(second_token, current);
    let refused = try_join(second_token).await.unwrap().unwrap_err();
    assert!(refused.contains("join token"), "{refused}");
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'cluster.token_rotated'")
            .await,
        2
    );
    assert!(hv.errors().is_empty(), "{:?}", hv.errors());
    drop(spare);
}

/// A swarm with one joined worker running bob's notebook, a stray node, and an untagged
/// instance; the app serves it through its pages and API.
async fn desk_on_fakes() -> (TestApp, Arc<Cluster>, FakeWorld, String, String) {
    let world = FakeWorld::new();
    let ours = world.add_instance(Some("camp"), "l0");
    world.with(|w| {
        w.join(&ours);
        w.nodes.push(hubdesk::cluster::fake::worker_node(
            "stray", "worker9", "10.9.9.9",
        ));
        w.notebooks
            .push(notebook("bob-smith", &format!("node-{}", ours.id)));
    });
    let untagged = world.add_instance(None, "x");
    let w2 = world.clone();
    let (app, cluster) = app_with(move |pool| {
        Cluster::new(
            Arc::new(w2.runtime()),
            Arc::new(w2.fleet("camp")),
            pool,
            cluster_config("camp"),
        )
    })
    .await;
    (app, cluster, world, ours.id, untagged.id)
}

#[tokio::test]
async fn cluster_api_follows_the_contract_and_refuses_untagged_instances_without_a_call() {
    let (app, _cluster, world, ours, untagged) = desk_on_fakes().await;
    let token = app.api_token().await;
    let api = |m: reqwest::Method, path: &str| {
        app.client
            .request(m, app.url(&format!("/api/v1{path}")))
            .bearer_auth(&token)
    };
    let r = app
        .client
        .get(app.url("/api/v1/cluster"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = api(reqwest::Method::GET, "/cluster").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["swarm"]["state"], "manager");
    assert_eq!(body["swarm"]["manager"], "10.0.0.10:2377");
    let node = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["instance_id"] == ours.as_str())
        .unwrap();
    for key in [
        "id",
        "hostname",
        "role",
        "status",
        "availability",
        "cpus",
        "memory_bytes",
    ] {
        assert!(node.get(key).is_some(), "node.{key}");
    }
    assert_eq!(node["students"], serde_json::json!(["bob-smith"]));
    let inst = &body["instances"][0];
    assert_eq!(
        body["instances"].as_array().unwrap().len(),
        1,
        "the untagged one is not listed"
    );
    assert_eq!(inst["id"], ours.as_str());
    assert_eq!(inst["type"], "t3.large");
    assert_eq!(inst["state"], "running");
    assert_eq!(inst["node_id"], node["id"]);
    assert_eq!(inst["problems"], serde_json::json!([]));
    assert!(inst.get("private_ip").is_some());
    for key in ["students", "needed_bytes", "available_bytes", "suggestion"] {
        assert!(body["capacity"].get(key).is_some(), "capacity.{key}");
    }
    assert_eq!(body["capacity"]["students"], 1);

    let before = world.with(|w| w.total_calls("ec2."));
    let r = api(
        reqwest::Method::DELETE,
        &format!("/cluster/workers/{untagged}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "forbidden");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("not launched by hubdesk"));
    assert_eq!(
        world.with(|w| w.total_calls("ec2.")),
        before,
        "refused with no AWS call"
    );
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);

    let r = api(reqwest::Method::POST, "/cluster/workers")
        .json(&serde_json::json!({"count": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = api(reqwest::Method::POST, "/cluster/workers")
        .json(&serde_json::json!({"count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id: uuid::Uuid = r.json::<Value>().await.unwrap()["job"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(row.actor, "token:sync");

    let r = api(reqwest::Method::DELETE, &format!("/cluster/workers/{ours}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id: uuid::Uuid = r.json::<Value>().await.unwrap()["job"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(
        row.result.unwrap()["students"],
        serde_json::json!(["bob-smith"])
    );
}

#[tokio::test]
async fn cluster_page_shows_who_runs_where_launches_through_the_job_page_and_confirms_removal() {
    let (app, _cluster, world, ours, _untagged) = desk_on_fakes().await;
    app.create_student("Ana Lima", "ana", None).await;
    app.create_user(
        hubdesk::domain::Role::Counselor,
        "connie",
        crate::helpers::PASSWORD,
    )
    .await;
    let counselor = app.other_browser();
    counselor.login_ok("connie", crate::helpers::PASSWORD).await;
    assert_eq!(counselor.get("/cluster").await.status(), 403);

    app.as_admin().await;
    let page = app.get_html("/cluster").await;
    assert!(page.contains("data-state=\"manager\""), "{page}");
    assert!(page.contains(&format!("data-id=\"node-{ours}\"")));
    assert!(page.contains("<span class=\"student\">bob-smith</span>"));
    assert!(page.contains(&format!("data-id=\"{ours}\"")));
    assert!(
        page.contains("no EC2 instance launched by hubdesk"),
        "the stray node is flagged"
    );
    assert!(
        page.contains("href=\"/cluster\""),
        "admins see the nav link"
    );
    assert!(page.contains("id=\"launch-form\""));

    let r = app
        .post_form_from("/cluster", "/cluster/workers", &[("count", "many")])
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("A number from 1 to 50"));

    let r = app
        .post_form_from("/cluster", "/cluster/workers", &[("count", "2")])
        .await;
    assert_eq!(r.status(), 303);
    let location = TestApp::location(&r);
    assert!(location.starts_with("/jobs/"), "{location}");
    let id: uuid::Uuid = location.trim_start_matches("/jobs/").parse().unwrap();
    let job_page = app.get_html(&location).await;
    assert!(job_page.contains("cluster.launch"));
    let row = finished(&app, id, 30).await;
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    assert_eq!(row.actor, "boss");
    let page = app.get_html("/cluster").await;
    assert_eq!(page.matches("class=\"instance\"").count(), 3);

    let confirm = app
        .get_html(&format!("/cluster/workers/{ours}/remove"))
        .await;
    assert!(confirm.contains("<li>bob-smith</li>"), "{confirm}");
    assert!(confirm.contains("data-confirm="));
    let r = app
        .post_form_from(
            &format!("/cluster/workers/{ours}/remove"),
            &format!("/cluster/workers/{ours}/remove"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    let id: uuid::Uuid = TestApp::location(&r)
        .trim_start_matches("/jobs/")
        .parse()
        .unwrap();
    assert_eq!(finished(&app, id, 30).await.state.as_str(), "succeeded");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'cluster.remove' AND actor = 'boss'"
        )
        .await,
        1
    );

    let r = app
        .post_form_from("/cluster", "/cluster/dry-run", &[])
        .await;
    assert_eq!(TestApp::location(&r), "/cluster?dry_run=ok");
    assert!(app
        .get_html("/cluster?dry_run=ok")
        .await
        .contains("Dry run passed"));
    world.with(|w| w.fleet_error = Some(FleetError::InvalidAmi("ami-x not found".into())));
    let r = app
        .post_form_from("/cluster", "/cluster/dry-run", &[])
        .await;
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Dry run failed: the worker AMI cannot be used"),
        "{body}"
    );
    assert!(
        body.contains("id=\"ec2-error\""),
        "the page still shows, with EC2's error"
    );
}

#[tokio::test]
async fn cluster_desk_off_says_how_to_turn_it_on() {
    let app = crate::helpers::spawn_app().await;
    assert!(app.state.cluster.is_none());
    app.as_admin().await;
    assert!(app
        .get_html("/cluster")
        .await
        .contains("id=\"cluster-off\""));
    let token = app.api_token().await;
    let r = app
        .client
        .get(app.url("/api/v1/cluster"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Boot order (issue 16): with the cluster desk on and no Docker engine yet (not started, or
/// down), hubdesk still starts and serves logins; the cluster page says the engine cannot be
/// reached; once the engine's socket is there, the desk finds it without a restart.
#[tokio::test]
async fn cluster_desk_starts_without_the_engine_and_finds_it_when_it_comes() {
    let dir = std::env::temp_dir().join(format!("hubdesk-nodocker-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("docker.sock");
    let host = format!("unix://{}", socket.display());
    let app = crate::helpers::spawn_app_with(|c| {
        c.cluster = cluster_config("nodocker");
        c.cluster.enabled = true;
        c.cluster.docker_host = host.clone();
    })
    .await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.as_admin().await; // logins work without the engine
    let page = app.get_html("/cluster").await;
    assert!(page.contains("id=\"docker-error\""), "{page}");
    assert!(page.contains("cannot reach the Docker engine"), "{page}");

    // The engine comes: this host's own (not a swarm manager), at the configured socket path.
    let engine = std::path::Path::new("/var/run/docker.sock");
    let available = if engine.exists() {
        Ok(())
    } else {
        Err("no /var/run/docker.sock on this host".to_string())
    };
    if crate::cluster_peers::require("a Docker engine", available) {
        std::os::unix::fs::symlink(engine, &socket).unwrap();
        let page = app.get_html("/cluster").await;
        // Reached: what it says now is about the engine's state, not about reaching it.
        assert!(!page.contains("cannot reach the Docker engine"), "{page}");
        assert!(
            page.contains("not a swarm manager") || page.contains("data-state=\"manager\""),
            "{page}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
