//! A lost node on the three-worker testbed, on local disks an administrator prepared (two per
//! worker, bound through `spec.storage.selector`): the primary's node loses power under the chaos
//! writer. The primary fails over (never two writers, nothing acknowledged lost), and once the
//! node has been lost for `lostNodeSeconds`, its instance, whose volume is a local disk of
//! that node, is replaced on a surviving node and cloned: the cluster is whole again without
//! anyone stepping in. Runs only on the testbed (`SAKILA_TESTBED`), which makes the workers for
//! this test and removes them after it. The figures (median of runs, the replica's node, a
//! partition) are `e2e/bench/node-loss`'s.

use sakila_e2e::chaos;
use sakila_e2e::node_loss::{self, Whose, Workers};
use sakila_e2e::{TestNamespace, event_count_on};

#[tokio::test]
async fn the_primarys_node_powered_off_fails_over_and_its_instance_is_replaced_on_another_node() {
    if std::env::var_os("SAKILA_TESTBED").is_none() {
        println!("SKIPPED: not on the testbed (SAKILA_TESTBED unset)");
        return;
    }
    let _workers = Workers::three();
    let ns = TestNamespace::new("node-loss").await;
    // Local disks an administrator made, two per worker, picked by spec.storage.selector: a
    // lost node's disk cannot follow its instance, which gets a spare on another node.
    let class = node_loss::prepare_local_disks(&ns, 2).await;
    let manifest = node_loss::on_local_disks(node_loss::manifest(10), &ns, &class);
    node_loss::create(&ns, manifest).await;
    // Spreading is preferred, not required: should the scheduler double up, move one first.
    node_loss::spread_out(&ns).await;
    let before = node_loss::bound_volumes(&ns).await;
    let pool = format!("{}-", ns.name);
    assert!(
        before.iter().all(|v| v.starts_with(&pool)),
        "every claim bound to a prepared disk: {before:?}"
    );
    let mut nodes = Vec::new();
    for ordinal in 0..3 {
        nodes.push(node_loss::node_of(&ns, &format!("{}-{ordinal}", node_loss::CLUSTER)).await);
    }
    nodes.sort();
    nodes.dedup();
    assert_eq!(
        nodes.len(),
        3,
        "the instances spread over the three workers"
    );
    let loss = node_loss::power_off(&ns, Whose::Primary).await;
    println!(
        "primary {} on {} powered off: write gap {:.2} s, {} acknowledged, {} lost; {} Ready on {} after {:.1} s, cluster whole after {:.1} s",
        loss.pod,
        loss.node,
        loss.outcome.longest_write_gap.as_secs_f64(),
        loss.outcome.acknowledged,
        loss.outcome.lost,
        loss.pod,
        loss.new_node,
        loss.replaced_after.as_secs_f64(),
        loss.ready_after.as_secs_f64()
    );
    assert!(
        loss.record.most_writable_at_once() <= 1,
        "two instances were writable at once"
    );
    assert_eq!(
        loss.record.most_writable_at_once(),
        1,
        "the sampler never saw a writable instance"
    );
    assert!(loss.outcome.acknowledged > 50, "the writer made progress");
    assert_eq!(loss.outcome.lost, 0, "acknowledged writes were lost");
    assert!(loss.outcome.converged, "the GTID sets did not converge");
    let new_primary = loss.outcome.primary.clone().expect("a primary");
    assert_ne!(new_primary, loss.old_primary, "the primary moved");
    assert_ne!(loss.new_node, loss.node, "the instance left the lost node");
    assert!(
        event_count_on(&ns, "MySQLCluster", "InstanceReplaced").await >= 1,
        "the replacement was announced"
    );
    assert!(
        loss.lost_node_reported,
        "Progressing said an instance waited on a lost node"
    );
    // The node is back (powered on by the scenario): the cluster stays whole and its old pod
    // and volume there are gone, not served.
    let again = sakila_e2e::wait_ready(&ns, node_loss::CLUSTER).await;
    assert_eq!(again.status.as_ref().map(|s| s.ready_instances), Some(3));
    let primary_after = chaos::current_primary(&ns, node_loss::CLUSTER).await;
    assert_eq!(primary_after, Some(new_primary), "the primary stayed put");
    // The replaced instance is on another prepared disk; the others kept theirs.
    let after = node_loss::bound_volumes(&ns).await;
    let ordinal: usize = loss
        .pod
        .trim_start_matches(&format!("{}-", node_loss::CLUSTER))
        .parse()
        .unwrap();
    for (i, (was, is)) in before.iter().zip(&after).enumerate() {
        assert!(is.starts_with(&pool), "{is} is a prepared disk");
        if i == ordinal {
            assert_ne!(was, is, "the lost instance got a disk of a surviving node");
        } else {
            assert_eq!(was, is, "instance {i} kept its disk");
        }
    }
    node_loss::remove_local_disks(&ns, &class);
}
