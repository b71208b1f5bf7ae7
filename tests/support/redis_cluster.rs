//! A local Redis Cluster for the tests: three primaries with a replica
//! each, made by `redis-cli --cluster create`, stopped when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::redis_server::answers_as;
use super::wait_until;

pub struct RedisCluster {
    pub nodes: Vec<Node>,
    dir: std::path::PathBuf,
}

pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

/// A port whose cluster bus port (+10000) is free and valid too.
fn free_node_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port < 50_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl Node {
    /// A cluster node on a free port; another is tried if a test took the
    /// port first.
    fn start(dir: &std::path::Path) -> Node {
        for _ in 0..5 {
            let port = free_node_port();
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                // A replica that never synced may not take over: sync at once.
                .args(["--repl-diskless-sync-delay", "0"])
                .arg("--cluster-config-file")
                .arg(node_dir.join("nodes.conf"))
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is installed (bin/setup installs it)");
            if answers_as(&mut child, port) {
                return Node {
                    port,
                    child: Some(child),
                };
            }
        }
        panic!("no free port for a cluster node in 5 tries");
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(1))
            .unwrap()
    }

    pub fn query<T: redis::FromRedisValue>(&self, command: &mut redis::Cmd) -> T {
        command.query(&mut self.connection()).unwrap()
    }

    pub fn id(&self) -> String {
        self.query(redis::cmd("CLUSTER").arg("MYID"))
    }

    pub fn is_primary(&self) -> bool {
        let role: Vec<redis::Value> = self.query(&mut redis::cmd("ROLE"));
        matches!(&role[0], redis::Value::BulkString(r) if r == b"master")
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_alive(&self) -> bool {
        self.child.is_some()
    }
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "redisse-test-cluster-{}-{}",
            std::process::id(),
            free_node_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let nodes: Vec<Node> = (0..6).map(|_| Node::start(&dir)).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed");
        assert!(
            output.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes, dir };
        cluster.wait_until_ok();
        cluster
    }

    /// Until every live node says the cluster is ok, and every replica is
    /// in sync with its primary.
    pub fn wait_until_ok(&self) {
        wait_until("the cluster is ok", Duration::from_secs(30), || {
            self.nodes.iter().filter(|n| n.is_alive()).all(|node| {
                let info: String = node.query(redis::cmd("CLUSTER").arg("INFO"));
                let replication: String = node.query(redis::cmd("INFO").arg("replication"));
                info.contains("cluster_state:ok")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            })
        });
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub fn slot_of(&self, key: &str) -> u16 {
        self.live_node()
            .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }

    /// `CLUSTER NODES`, for failure messages.
    pub fn describe(&self) -> String {
        self.live_node().query(redis::cmd("CLUSTER").arg("NODES"))
    }

    fn live_node(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.is_alive())
            .expect("a live node")
    }

    /// The index of the primary that holds `slot` now.
    pub fn owner_of(&self, slot: u16) -> usize {
        let slots: Vec<redis::Value> = self.live_node().query(redis::cmd("CLUSTER").arg("SLOTS"));
        for range in slots {
            let redis::Value::Array(fields) = range else {
                continue;
            };
            let (Some(redis::Value::Int(start)), Some(redis::Value::Int(end))) =
                (fields.first(), fields.get(1))
            else {
                continue;
            };
            if (*start..=*end).contains(&i64::from(slot)) {
                let redis::Value::Array(primary) = &fields[2] else {
                    panic!("CLUSTER SLOTS: {fields:?}")
                };
                let redis::Value::Int(port) = primary[1] else {
                    panic!("CLUSTER SLOTS: {primary:?}")
                };
                return self
                    .nodes
                    .iter()
                    .position(|n| i64::from(n.port) == port)
                    .expect("a known node");
            }
        }
        panic!("slot {slot} has no owner");
    }

    /// Moves `slot` from its primary to the primary `to`, keys and all, as
    /// `redis-cli --cluster reshard` does.
    pub fn move_slot(&self, slot: u16, to: usize) {
        let from = &self.nodes[self.owner_of(slot)];
        let to = &self.nodes[to];
        let (from_id, to_id) = (from.id(), to.id());
        let set = |node: &Node, args: &[&str]| {
            let _: () = node.query(redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg(args));
        };
        set(to, &["IMPORTING", &from_id]);
        set(from, &["MIGRATING", &to_id]);
        loop {
            let keys: Vec<String> = from.query(
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(100),
            );
            if keys.is_empty() {
                break;
            }
            let _: () = from.query(
                redis::cmd("MIGRATE")
                    .arg("127.0.0.1")
                    .arg(to.port)
                    .arg("")
                    .arg(0)
                    .arg(5000)
                    .arg("KEYS")
                    .arg(&keys),
            );
        }
        for node in self.nodes.iter().filter(|n| n.is_alive() && n.is_primary()) {
            set(node, &["NODE", &to_id]);
        }
    }

    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_alive() && self.nodes[i].is_primary())
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
