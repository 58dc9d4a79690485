"""The inventory: a gRPC service (grpcio) that reserves stock. `python -m … PORT [HOST]`."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import grpc

from tapproxy.demo.services.inventory_api import SERVICE, ReserveReply, ReserveRequest

_stock = {"tea": 12, "cups": 0, "mug": 5}


def reserve(request: ReserveRequest, context: grpc.ServicerContext) -> ReserveReply:
    left = _stock.get(request.sku, 0)
    if left < request.qty:
        return ReserveReply(reserved=False, left=left)
    _stock[request.sku] = left - request.qty
    return ReserveReply(reserved=True, left=left - request.qty)


def main(port: int, host: str = "127.0.0.1") -> None:
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Reserve": grpc.unary_unary_rpc_method_handler(
            reserve, request_deserializer=ReserveRequest.FromString,
            response_serializer=ReserveReply.SerializeToString)})
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:3])
