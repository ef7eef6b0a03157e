"""A data handler written the way fms-hf-tuning writes them: a function of one row (``element``)."""


def tag_output(element, column_name: str, tag: str, **kwargs):
    """Append ``tag`` to the text in ``column_name``; a data config names it `tag_output`."""
    return {column_name: element[column_name] + tag}
