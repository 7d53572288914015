"""Pictures of a run: plots (curves, confusion matrix), Grad-CAM, feature maps, filters, and the HTML report.

    from cnnlab.viz.gradcam import grad_cam           # grad_cam(model, x, class_index=None, layer=None)
    from cnnlab.viz.features import feature_maps      # one FeatureStage per conv stage
    from cnnlab.viz.filters import filter_grid, first_conv_weight
    from cnnlab.viz.report import build_report        # build_report(run_dir, out=None) -> Path
    from cnnlab.viz.report_medical import medical_gradcam_png  # Grad-CAM TP/FN/FP/TN picture of a binary run
    from cnnlab.viz.medical_plots import roc_figure, reliability_figure  # clinical figures

Modules are imported on use (nothing here), so `cnnlab.viz.plots` stays cheap for `cnnlab evaluate`.
"""
