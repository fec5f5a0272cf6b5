from django.db import models


class Order(models.Model):
    user = models.ForeignKey("users.User", on_delete=models.PROTECT, related_name="orders")
    product = models.ForeignKey("products.Product", on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"])]
