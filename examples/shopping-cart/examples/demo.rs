//! `cargo run -p shopping-cart --example demo -- [ENDPOINT...]`: runs the
//! cart scenarios against a running cluster (default: the first two nodes of
//! `ringkv dev`) and prints what each merge left in the cart.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use ringkv_client::Client;
use shopping_cart::scenario::{remove_races_an_add, shoppers_at_once};
use shopping_cart::{CartError, CartState, CartStore, NaiveCart, OrSetCart};

const DEFAULT_ENDPOINTS: [&str; 2] = ["http://127.0.0.1:8080", "http://127.0.0.1:8081"];

#[tokio::main]
async fn main() -> ExitCode {
    let mut endpoints: Vec<String> = std::env::args().skip(1).collect();
    if endpoints.iter().any(|a| a.starts_with('-')) {
        eprintln!("usage: demo [ENDPOINT...]   (default: {DEFAULT_ENDPOINTS:?})");
        return ExitCode::from(2);
    }
    if endpoints.is_empty() {
        endpoints = DEFAULT_ENDPOINTS.map(String::from).to_vec();
    }
    match run(&endpoints).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A store whose requests go to `endpoints[i]` (round the list).
fn store(endpoints: &[String], i: usize) -> Result<CartStore, CartError> {
    let client = Client::new(vec![endpoints[i % endpoints.len()].clone()])?;
    Ok(CartStore::new(client, "carts"))
}

async fn run(endpoints: &[String]) -> Result<(), CartError> {
    // Fresh cart names on every run.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let (alice, bob) = (store(endpoints, 0)?, store(endpoints, 1)?);
    println!("Alice fills a cart with apple and pear. Alice and Bob read it; Alice removes");
    println!("the pear while Bob adds milk, both from that read. Then the cart is read:");
    let naive = remove_races_an_add::<NaiveCart>(&alice, &bob, &format!("naive-{run}")).await?;
    println!(
        "  naive set union: {} siblings merged into {:?}{}",
        naive.siblings,
        naive.items,
        if naive.items.contains("pear") {
            "  <- the removed pear came back"
        } else {
            ""
        }
    );
    let orset = remove_races_an_add::<OrSetCart>(&alice, &bob, &format!("orset-{run}")).await?;
    println!(
        "  OR-Set:          {} siblings merged into {:?}",
        orset.siblings, orset.items
    );
    println!();
    println!("Four shoppers at once on one cart, each adding 6 items and removing 3:");
    shoppers::<NaiveCart>("naive set union", endpoints, &format!("busy-naive-{run}")).await?;
    shoppers::<OrSetCart>("OR-Set", endpoints, &format!("busy-orset-{run}")).await?;
    Ok(())
}

async fn shoppers<S: CartState>(
    name: &str,
    endpoints: &[String],
    cart: &str,
) -> Result<(), CartError> {
    let stores = (0..4)
        .map(|k| store(endpoints, k))
        .collect::<Result<Vec<_>, _>>()?;
    let s = shoppers_at_once::<S>(stores, cart, 6).await?;
    let back: Vec<&String> = s.items.intersection(&s.removed).collect();
    let lost: Vec<&String> = s.expected.difference(&s.items).collect();
    println!(
        "  {name}: {} items expected, {} in the cart; {} reads found siblings; \
         removed items back: {back:?}; items lost: {lost:?}",
        s.expected.len(),
        s.items.len(),
        s.reads_with_siblings,
    );
    Ok(())
}
