//! Relay-style connections: `first` (default 20, at most 100), `after` (an opaque cursor),
//! `pageInfo`, and `totalCount` counted only when asked for. Pages are keyset pages on the
//! time-ordered UUIDv7 primary key, so a page costs one indexed query whatever the offset.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, OutputType};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait as _, Select,
};
use uuid::Uuid;

use crate::db::{Db, TenantScoped, begin_tenant, begin_viewer, read_as, read_in};
use crate::error::{AppError, AppResult};
use crate::ids::TenantId;

pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;

/// Parsed paging arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageArgs {
    pub first: usize,
    pub after: Option<Uuid>,
    pub want_total: bool,
}

impl PageArgs {
    pub fn parse(ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> AppResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE,
            Some(n) if n < 0 => return Err(AppError::invalid("first", "must not be negative")),
            Some(n) if n as usize > MAX_PAGE => {
                return Err(AppError::invalid(
                    "first",
                    format!("must be at most {MAX_PAGE}"),
                ));
            }
            Some(n) => n as usize,
        };
        let after = after.map(|c| decode_cursor(&c)).transpose()?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        Ok(Self {
            first,
            after,
            want_total,
        })
    }
}

pub fn encode_cursor(id: Uuid) -> String {
    B64.encode(id.as_bytes())
}

fn decode_cursor(cursor: &str) -> AppResult<Uuid> {
    B64.decode(cursor)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| AppError::invalid("after", "is not a cursor returned by this API"))
}

/// One page of rows plus what the connection needs to describe it.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
    pub has_previous: bool,
    pub total: Option<u64>,
}

/// The keyset query of one page: rows after the cursor, in ID order, one more than asked for (to
/// tell whether a next page exists).
pub fn page_query<E: EntityTrait>(
    select: Select<E>,
    id_col: E::Column,
    args: PageArgs,
) -> Select<E> {
    let mut query = select.order_by_asc(id_col);
    if let Some(after) = args.after {
        query = query.filter(id_col.gt(after));
    }
    query.limit(args.first as u64 + 1)
}

pub fn into_page<M>(
    mut items: Vec<M>,
    id_of: fn(&M) -> Uuid,
    args: PageArgs,
    total: Option<u64>,
) -> Page<M> {
    let has_next = items.len() > args.first;
    items.truncate(args.first);
    debug_assert!(items.windows(2).all(|w| id_of(&w[0]) < id_of(&w[1])));
    Page {
        items,
        has_next,
        has_previous: args.after.is_some(),
        total,
    }
}

/// Runs a keyset page over `select` ordered by `id_col`, inside an open transaction.
pub async fn fetch_page<E, C>(
    conn: &C,
    select: Select<E>,
    id_col: E::Column,
    id_of: fn(&E::Model) -> Uuid,
    args: PageArgs,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Sync,
    C: ConnectionTrait,
{
    let total = if args.want_total {
        Some(select.clone().count(conn).await?)
    } else {
        None
    };
    let items = page_query(select, id_col, args).all(conn).await?;
    Ok(into_page(items, id_of, args, total))
}

/// Runs a keyset page of one tenant's rows; `select` is narrowed to the tenant here. With
/// `totalCount`, count and page share the transaction so they agree.
pub async fn fetch_tenant_page<E>(
    db: &Db,
    tenant: TenantId,
    select: Select<E>,
    id_col: E::Column,
    id_of: fn(&E::Model) -> Uuid,
    args: PageArgs,
) -> AppResult<Page<E::Model>>
where
    E: TenantScoped,
    E::Model: Sync,
{
    let txn = begin_tenant(db, tenant).await?;
    let select = txn.scope(select);
    let page = if args.want_total {
        fetch_page(&txn, select, id_col, id_of, args).await?
    } else {
        let mut items: Vec<E::Model> =
            read_in(&txn, page_query(select, id_col, args).into_query()).await?;
        // The subquery's order survives in practice; sorting makes it a guarantee.
        items.sort_by_key(id_of);
        into_page(items, id_of, args, None)
    };
    txn.commit().await?;
    Ok(page)
}

/// A page of rows that are not tenant-owned, seen by an optional viewer (shared rows such as
/// public templates, plus the viewer's own).
pub async fn fetch_page_as<E>(
    db: &Db,
    viewer: Option<TenantId>,
    select: Select<E>,
    id_col: E::Column,
    id_of: fn(&E::Model) -> Uuid,
    args: PageArgs,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Sync,
{
    if args.want_total {
        let txn = begin_viewer(db, viewer).await?;
        let page = fetch_page(&txn, select, id_col, id_of, args).await?;
        txn.commit().await?;
        return Ok(page);
    }
    let mut items: Vec<E::Model> =
        read_as(db, viewer, page_query(select, id_col, args).into_query()).await?;
    // The subquery's order survives in practice; sorting makes it a guarantee.
    items.sort_by_key(id_of);
    Ok(into_page(items, id_of, args, None))
}

/// `totalCount` on every connection.
#[derive(Debug)]
pub struct ConnectionTotal(Option<u64>);

#[Object]
impl ConnectionTotal {
    /// How many items the whole list has (all pages).
    async fn total_count(&self) -> i64 {
        self.0.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
    }
}

pub type Conn<N> = Connection<String, N, ConnectionTotal, EmptyFields>;

/// Maps a page of rows into a connection of GraphQL nodes.
pub fn into_connection<M, N: OutputType>(
    page: Page<M>,
    id_of: fn(&M) -> Uuid,
    mut node: impl FnMut(M) -> N,
) -> Conn<N> {
    let mut conn = Connection::with_additional_fields(
        page.has_previous,
        page.has_next,
        ConnectionTotal(page.total),
    );
    conn.edges.extend(
        page.items
            .into_iter()
            .map(|m| Edge::new(encode_cursor(id_of(&m)), node(m))),
    );
    conn
}
