"""The one resize + normalisation in front of every network: PRI, the pipeline and the ONNX graphs
run the same calls, so a probe's network input is the same in evaluate, search and export."""
import torch

from lrreid.models.net_input import NetInput, net_input, resize_for_net

MEAN, STD, SIZE = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (64, 32)


def images(h, w, n=2):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(h * 100 + w))


def test_pri_pipeline_and_onnx_graph_feed_a_network_the_same_input():
    from lrreid.export.onnx import ReIDGraph
    from lrreid.inference.pipeline import LRReIDPipeline
    from lrreid.inference.testing import tiny_networks
    from lrreid.methods.pri.model import PRIMethod
    from lrreid.utils.device import Precision

    reid, sr, predictor = tiny_networks()
    seen = []
    reid.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    method = PRIMethod(sr_net=sr, reid_net=reid, scale_predictor=predictor, scales=(1, 2, 3, 4), input_size=SIZE,
                       train_dataset=None, num_lr_images=0, hr_mean_area=1.0)
    pipe = LRReIDPipeline(reid, sr, predictor, input_size=SIZE, precision=Precision.for_inference(fast=False),
                          mean=MEAN, std=STD, batch_size=2)
    graph = ReIDGraph(reid, SIZE, MEAN, STD, normalize_features=False)
    for h, w in [(16, 8), (64, 32), (80, 20), (90, 50)]:  # enlarge, same size, shrink one side, shrink both
        x = images(h, w)
        seen.clear()
        method.embed(x)
        with torch.inference_mode():
            pipe._embed_batch(x)
        graph(x)
        pri, pipeline, onnx_graph = seen
        assert torch.equal(pri, net_input(x, SIZE, MEAN, STD)), (h, w)
        assert torch.equal(pipeline, pri) and torch.equal(onnx_graph, pri), (h, w)


def test_an_exported_graph_resizes_every_input_size_as_eager_code_does():
    """torch.export traces one antialiased resize (no branch on the shape): equal to the eager
    choice within float rounding, for sizes other than the traced one."""
    module = NetInput(SIZE, MEAN, STD)
    dim_h, dim_w = torch.export.Dim("h", min=2, max=512), torch.export.Dim("w", min=2, max=512)
    program = torch.export.export(module, (images(16, 8),), dynamic_shapes=({2: dim_h, 3: dim_w},))
    for h, w in [(16, 8), (33, 17), (64, 32), (80, 20), (128, 64)]:
        x = images(h, w)
        torch.testing.assert_close(program.module()(x), module(x), rtol=0, atol=1e-5)
    assert torch.equal(resize_for_net(images(64, 32), SIZE), images(64, 32))  # eager: the same size is the identity
